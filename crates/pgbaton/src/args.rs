//! The command line: every subcommand, its options, and the help text with examples.
//! Man pages and shell completions are generated from these definitions (`generate`).

use crate::{cli, demo, fence};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The config file read when neither `-c` nor `PGBATON_CONFIG` is given.
pub const DEFAULT_CONFIG: &str = "/etc/pgbaton/pgbaton.yaml";

const EXAMPLES: &str = "\
Examples:
  pgbaton agent                          run this host's member (/etc/pgbaton/pgbaton.yaml)
  pgbaton list                           the members, their role, state and lag
  pgbaton switchover --to node2          hand the primary role to node2
  pgbaton check                          one-line health for Nagios/Icinga (exit 0-3)
  psql \"$(pgbaton dsn --role primary)\"   connect to whichever member is the primary
  PGBATON_CONFIG=/etc/pgbaton/node1.yaml pgbaton history --format json

The config file: -c FILE, else $PGBATON_CONFIG, else /etc/pgbaton/pgbaton.yaml.
Commands other than `agent` and `check-config` accept any member's file: they only
use its store and cluster name.";

/// PostgreSQL replication and failover manager.
#[derive(Parser)]
#[command(name = "pgbaton", version, about, long_about = None,
    after_help = format!("{EXAMPLES}\n\n{}", crate::exit::HELP))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The config file option shared by every command that needs one.
#[derive(Args, Clone, Debug)]
pub struct ConfigArg {
    /// A member's config file (any member's, for commands that act on the cluster);
    /// without it, $PGBATON_CONFIG, else the default.
    #[arg(short, long, value_name = "FILE", env = "PGBATON_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// Output format of the commands that print state.
pub use cli::Format;

#[derive(Subcommand)]
pub enum Command {
    /// Run this member's agent in the foreground.
    #[command(after_help = "\
Examples:
  pgbaton agent -c /etc/pgbaton/node1.yaml
  systemctl start pgbaton            (the packaged unit runs `pgbaton agent`)

Under systemd (Type=notify) the agent sends READY=1 once its HA loop runs, WATCHDOG=1
from that loop (WatchdogSec), and STOPPING=1 on SIGTERM. An unreachable store at start
is retried with backoff, not treated as fatal.")]
    Agent {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate a config file and print the effective config (passwords masked).
    #[command(after_help = "\
Examples:
  pgbaton check-config -c /etc/pgbaton/node1.yaml
  pgbaton check-config --format json | jq .config.bootstrap

Exits 0 when the file is valid, 78 with every problem (file:line:column, key, fix).")]
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format: YAML with the failover budget as comments, or JSON.
        #[arg(long, value_enum, default_value_t = cli::ConfigFormat::Yaml)]
        format: cli::ConfigFormat,
    },
    /// Print the cluster-wide config the store holds (YAML or JSON).
    #[command(after_help = "Example:\n  pgbaton show-config --format json")]
    ShowConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = cli::ConfigFormat::Yaml)]
        format: cli::ConfigFormat,
    },
    /// Change the cluster-wide config in the store: checked, compare-and-set, diff printed.
    #[command(after_help = "\
Examples:
  pgbaton edit-config --set loop_wait=2 --set parameters.work_mem=8MB
  pgbaton edit-config --set maximum_lag_on_failover=null     (back to the default)")]
    EditConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// KEY=VALUE, e.g. loop_wait=2, paused=true, parameters.work_mem=8MB; KEY=null resets it.
        #[arg(short, long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Output format: the diff for people, or `{cluster, changed, changes, config}`.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show the cluster's members: role, state, timeline, LSN, lag, and why.
    #[command(after_help = "\
Examples:
  pgbaton list
  pgbaton list --format json | jq '.[] | select(.role == \"primary\") | .name'")]
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One-line cluster health with Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    #[command(after_help = "\
Examples:
  pgbaton check
  pgbaton check --lag-warning 16MB --lag-critical 1GB --format json

CRITICAL: no primary, or a replica lags more than --lag-critical.
WARNING: a registered member is not streaming, lag above --lag-warning, or paused.
UNKNOWN: the config is bad or the store is unreachable.")]
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Lag (bytes, or with kB/MB/GB) above which a replica is a WARNING.
        #[arg(long, value_name = "BYTES", default_value = "16MB", value_parser = parse_bytes)]
        lag_warning: u64,
        /// Lag above which a replica is CRITICAL.
        #[arg(long, value_name = "BYTES", default_value = "256MB", value_parser = parse_bytes)]
        lag_critical: u64,
        /// Output format: the Nagios line, or JSON.
        #[arg(long, value_enum, default_value_t = cli::CheckFormat::Text)]
        format: cli::CheckFormat,
    },
    /// Print a libpq multi-host connection string for the cluster.
    #[command(after_help = "\
Examples:
  psql \"$(pgbaton dsn)\"                               the primary, wherever it is
  psql \"$(pgbaton dsn --role replica --dbname app)\"    a replica (standby)
  pgbaton dsn --format uri --user app

Members are listed as the store shows them now (the primary first); libpq tries them
in order and keeps the first whose role matches target_session_attrs. No password is
printed: use ~/.pgpass or PGPASSWORD.")]
    Dsn {
        #[command(flatten)]
        config: ConfigArg,
        /// Which member the connection must reach.
        #[arg(long, value_enum, default_value_t = cli::DsnRole::Primary)]
        role: cli::DsnRole,
        /// Database name.
        #[arg(long, default_value = "postgres")]
        dbname: String,
        /// User name (default: libpq's, i.e. $PGUSER or the OS user).
        #[arg(long)]
        user: Option<String>,
        /// Output format: key=value conninfo, a postgresql:// URI, or JSON.
        #[arg(long, value_enum, default_value_t = cli::DsnFormat::Conninfo)]
        format: cli::DsnFormat,
    },
    /// Hand the primary role to a replica, with no data loss.
    #[command(after_help = "\
Examples:
  pgbaton switchover --force                      to the best streaming replica, now
  pgbaton switchover --to node2 --at +5m          scheduled
  pgbaton switchover --cancel

Exits 0 once the new primary accepts writes, 65 when refused, 75 on --timeout.")]
    Switchover {
        #[command(flatten)]
        config: ConfigArg,
        /// The member to promote (default: the best streaming replica).
        #[arg(long)]
        to: Option<String>,
        /// When: an RFC 3339 time (2026-11-25T21:00:00Z) or +30s / +5m from now.
        #[arg(long)]
        at: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
        /// Cancel a pending (scheduled) switchover.
        #[arg(long)]
        cancel: bool,
        /// Seconds to wait for the new primary.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Promote a chosen member when there is no healthy primary.
    #[command(after_help = "\
Examples:
  pgbaton failover --to node2
  pgbaton failover --to node3 --force     (accept losing what node3 has not received)")]
    Failover {
        #[command(flatten)]
        config: ConfigArg,
        /// The member to promote.
        #[arg(long)]
        to: String,
        /// Accept losing commits the member has not received (logged in history).
        #[arg(long)]
        force: bool,
        /// Seconds to wait for the new primary.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Maintenance mode: no automatic failover, restart or rejoin.
    #[command(after_help = "Example:\n  pgbaton pause && do-maintenance && pgbaton resume")]
    Pause {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Leave maintenance mode.
    Resume {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show every promotion: timeline, switch point, reason.
    #[command(after_help = "Example:\n  pgbaton history --format json")]
    History {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Restart a member's PostgreSQL in its current role.
    #[command(after_help = "Example:\n  pgbaton restart node2 --timeout 60")]
    Restart {
        #[command(flatten)]
        config: ConfigArg,
        /// The member whose PostgreSQL restarts.
        name: String,
        /// Seconds to wait for it to run again.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Make a member's agent re-read its config file (tags, parameters, pg_hba lines).
    #[command(after_help = "Example:\n  pgbaton reload node1      (or: systemctl reload pgbaton)")]
    Reload {
        #[command(flatten)]
        config: ConfigArg,
        /// The member to reload.
        name: String,
    },
    /// Re-clone a replica from the primary.
    #[command(after_help = "Example:\n  pgbaton reinit node3 --force")]
    Reinit {
        #[command(flatten)]
        config: ConfigArg,
        /// The member to rebuild.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
        /// Seconds to wait for it to stream again.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Forget a member that is gone for good: the primary drops its replication slot.
    #[command(
        after_help = "Example:\n  pgbaton remove node3      (after stopping node3's agent for good)"
    )]
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        /// The member to forget.
        name: String,
    },
    /// Run a local demo cluster in the foreground, on the embedded store or on etcd.
    Demo {
        /// Where the configs, data and logs live (reused when run again).
        #[arg(long, default_value = "/var/tmp/pgbaton-demo")]
        dir: PathBuf,
        /// Number of members.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// The store the members share.
        #[arg(long, value_enum, default_value_t = demo::StoreArg::Local)]
        store: demo::StoreArg,
        /// Client URLs of a running etcd, comma-separated (with `--store etcd`). Without
        /// them the demo starts its own etcd on 127.0.0.1:22379.
        #[arg(long, value_delimiter = ',', value_name = "URL,...")]
        etcd_endpoints: Vec<String>,
        /// Also run a client that commits a row every 10 ms through the multi-host
        /// connection string and shows how many commits succeeded and failed (try a
        /// `pgbaton switchover` in another terminal).
        #[arg(long)]
        writer: bool,
    },
    /// Internal: write man pages or shell completions into DIR (used by packaging).
    #[command(hide = true)]
    Generate {
        /// What to write.
        #[arg(value_enum)]
        what: crate::generate::What,
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
    /// Internal: the fence process the agent starts to enforce its lease deadline.
    #[command(hide = true)]
    FenceWatchdog(fence::WatchdogArgs),
}

/// A byte count option (`16777216`, `16MB`, `1GB`).
fn parse_bytes(text: &str) -> Result<u64, String> {
    crate::api::parse_lag(text).map_err(|e| e.replacen("lag=", "", 1))
}
