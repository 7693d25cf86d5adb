//! PostgreSQL control for pgbaton: everything the agent does to its local PostgreSQL 15.
//!
//! It makes no HA decisions. The agent describes an [`Instance`] (binaries, data directory,
//! OS user, port, socket dir, superuser, log file) and then:
//! - inspects the data directory ([`Instance::data_dir_state`], [`Instance::controldata`]);
//! - creates a cluster ([`Instance::initdb`]) or clones one ([`Instance::basebackup`]),
//!   or re-syncs an old primary ([`Instance::rewind`]);
//! - writes config before each start ([`Instance::prepare_config`], [`Instance::write_hba`],
//!   [`Instance::write_passfile`]);
//! - starts, stops, promotes, reloads ([`Instance::start`], [`Instance::stop`],
//!   [`Instance::signal_stop`], [`Instance::promote`], [`Instance::reload`],
//!   [`Instance::status`]);
//! - talks SQL over the Unix socket ([`Instance::connect`] → [`Sql`]: probes, slots, roles).
//!
//! When pgbaton runs as root, every PostgreSQL program runs as [`Instance::run_as`]
//! (see [`OsUser::run_as_policy`]) and every file pgbaton writes for PostgreSQL is owned by it.

mod basebackup;
mod binaries;
mod conf;
mod conninfo;
mod controldata;
mod datadir;
mod error;
mod exitwatch;
mod fsutil;
mod hba;
mod initdb;
mod instance;
mod orphans;
mod osuser;
mod passfile;
mod process;
mod quote;
mod rewind;
mod sql;
mod timeline;
mod waldump;

pub use binaries::{find_bin_dir, find_bin_dir_in, DEBIAN_ROOT};
pub use conf::{
    render_managed_conf, with_include_last, without_keys, ALWAYS_CLEARED_AUTO_KEYS, INCLUDE_LINE,
    MANAGED_CONF,
};
pub use conninfo::{ConnTarget, StandbyTarget};
pub use controldata::{parse_controldata, ClusterState, ControlData};
pub use datadir::DataDirState;
pub use error::{Error, Result};
pub use exitwatch::ExitWatch;
pub use hba::{hba_address, standard_hba};
pub use initdb::InitdbOptions;
pub use instance::{Credentials, Instance};
pub use osuser::OsUser;
pub use passfile::{render_passfile, PassfileEntry};
pub use process::{parse_postmaster_pid, PostmasterInfo, StopMode};
pub use quote::{
    build_conninfo, check_conf_key, check_slot_name, escape_passfile_field, format_conf_value,
    quote_conninfo_value, quote_ident, quote_literal,
};
pub use rewind::RewindReport;
pub use sql::{Probe, ReplicationPeer, SlotInfo, Sql, WalReceiver, DEFAULT_CONNECT_TIMEOUT};
pub use timeline::parse_timeline_history;
pub use waldump::{newer_timeline_in, parse_waldump_end};
