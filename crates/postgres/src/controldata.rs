//! Reading `pg_controldata`: cluster state, timeline and WAL positions of a (stopped) cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use pgbaton_core::Lsn;

use crate::error::{Error, Result};
use crate::instance::Instance;

/// "Database cluster state" from pg_control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    /// `shut down`: a clean shutdown of a primary.
    ShutDown,
    /// `shut down in recovery`: a clean shutdown of a standby.
    ShutDownInRecovery,
    /// `in production`: running as primary, or crashed while it was.
    InProduction,
    /// `in crash recovery`.
    InCrashRecovery,
    /// `in archive recovery`: running as standby, or crashed while it was.
    InArchiveRecovery,
    /// `shutting down`.
    ShuttingDown,
    /// Anything else, e.g. `starting up`.
    Other(String),
}

impl ClusterState {
    /// Parses the English text printed by pg_controldata.
    pub fn parse(text: &str) -> ClusterState {
        match text.trim() {
            "shut down" => ClusterState::ShutDown,
            "shut down in recovery" => ClusterState::ShutDownInRecovery,
            "in production" => ClusterState::InProduction,
            "in crash recovery" => ClusterState::InCrashRecovery,
            "in archive recovery" => ClusterState::InArchiveRecovery,
            "shutting down" => ClusterState::ShuttingDown,
            other => ClusterState::Other(other.to_string()),
        }
    }

    /// True for a clean shutdown (as primary or as standby).
    pub fn is_clean_shutdown(&self) -> bool {
        matches!(
            self,
            ClusterState::ShutDown | ClusterState::ShutDownInRecovery
        )
    }
}

/// The parts of `pg_controldata` output pgbaton decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlData {
    /// "Database system identifier" (a u64 as text; compare it with the store's).
    pub system_identifier: String,
    /// "Database cluster state".
    pub cluster_state: ClusterState,
    /// "Latest checkpoint location".
    pub checkpoint_lsn: Lsn,
    /// "Latest checkpoint's REDO location".
    pub redo_lsn: Lsn,
    /// "Latest checkpoint's TimeLineID".
    pub checkpoint_timeline: u32,
    /// "Latest checkpoint's PrevTimeLineID".
    pub prev_checkpoint_timeline: u32,
    /// "Minimum recovery ending location" (0/0 when none).
    pub min_recovery_end_lsn: Lsn,
    /// "Min recovery ending loc's timeline" (0 when none).
    pub min_recovery_end_timeline: u32,
    /// "Data page checksum version" is not 0.
    pub data_checksums: bool,
    /// "wal_log_hints setting" is on.
    pub wal_log_hints: bool,
    /// Every `key: value` line, as printed.
    pub fields: BTreeMap<String, String>,
}

impl ControlData {
    /// pg_rewind can work on this cluster (checksums or wal_log_hints).
    pub fn rewind_possible(&self) -> bool {
        self.data_checksums || self.wal_log_hints
    }
}

/// Parses `pg_controldata` output produced with `LC_ALL=C` (pure). The error says which field
/// was missing or malformed.
pub fn parse_controldata(text: &str) -> Result<ControlData, String> {
    let fields: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let get = |k: &str| {
        fields
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("missing {k:?}"))
    };
    let lsn = |k: &str| -> Result<Lsn, String> {
        let v = get(k)?;
        v.parse()
            .map_err(|_| format!("{k:?} is not a WAL position: {v:?}"))
    };
    let num = |k: &str| -> Result<u32, String> {
        let v = get(k)?;
        v.parse()
            .map_err(|_| format!("{k:?} is not a number: {v:?}"))
    };
    let on = |k: &str| -> Result<bool, String> {
        match get(k)? {
            "on" => Ok(true),
            "off" => Ok(false),
            v => Err(format!("{k:?} is not on/off: {v:?}")),
        }
    };
    let system_identifier = get("Database system identifier")?.to_string();
    if system_identifier.parse::<u64>().is_err() {
        return Err(format!("bad system identifier {system_identifier:?}"));
    }
    Ok(ControlData {
        system_identifier,
        cluster_state: ClusterState::parse(get("Database cluster state")?),
        checkpoint_lsn: lsn("Latest checkpoint location")?,
        redo_lsn: lsn("Latest checkpoint's REDO location")?,
        checkpoint_timeline: num("Latest checkpoint's TimeLineID")?,
        prev_checkpoint_timeline: num("Latest checkpoint's PrevTimeLineID")?,
        min_recovery_end_lsn: lsn("Minimum recovery ending location")?,
        min_recovery_end_timeline: num("Min recovery ending loc's timeline")?,
        data_checksums: num("Data page checksum version")? != 0,
        wal_log_hints: on("wal_log_hints setting")?,
        fields,
    })
}

impl Instance {
    /// Runs `pg_controldata` on the data directory (as the OS user, `LC_ALL=C`) and parses it.
    /// Works whether the server runs or not, but the values are only final when it is stopped.
    pub async fn controldata(&self) -> Result<ControlData> {
        let mut cmd = self.command("pg_controldata");
        cmd.arg("-D").arg(&self.data_dir);
        let out = self
            .run(
                "read pg_control",
                "pg_controldata",
                cmd,
                Some(Duration::from_secs(30)),
                false,
            )
            .await?;
        parse_controldata(&String::from_utf8_lossy(&out.stdout)).map_err(|reason| {
            Error::ControlData {
                path: self.data_dir.clone(),
                reason,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHUTDOWN: &str = include_str!("testdata/controldata_shutdown.txt");

    #[test]
    fn parses_a_shut_down_primary() {
        let cd = parse_controldata(SHUTDOWN).unwrap();
        assert_eq!(cd.system_identifier, "7712193452194782933");
        assert_eq!(cd.cluster_state, ClusterState::ShutDown);
        assert_eq!(cd.checkpoint_lsn, "0/17414F0".parse().unwrap());
        assert_eq!(cd.redo_lsn, "0/17414F0".parse().unwrap());
        assert_eq!(cd.checkpoint_timeline, 1);
        assert_eq!(cd.prev_checkpoint_timeline, 1);
        assert_eq!(cd.min_recovery_end_lsn, Lsn(0));
        assert_eq!(cd.min_recovery_end_timeline, 0);
        assert!(cd.data_checksums);
        assert!(!cd.wal_log_hints);
        assert!(cd.rewind_possible());
        assert!(cd.cluster_state.is_clean_shutdown());
        // Lines without a space after the colon, and values with colons, are kept.
        assert_eq!(cd.fields["Latest checkpoint's oldestCommitTsXid"], "0");
        assert_eq!(
            cd.fields["Time of latest checkpoint"],
            "Wed Nov 25 19:29:25 2026"
        );
    }

    #[test]
    fn parses_a_standby_state() {
        let text = SHUTDOWN
            .replace(
                "state:               shut down",
                "state:               shut down in recovery",
            )
            .replace(
                "Minimum recovery ending location:     0/0",
                "Minimum recovery ending location:     0/3000148",
            )
            .replace(
                "Min recovery ending loc's timeline:   0",
                "Min recovery ending loc's timeline:   2",
            )
            .replace(
                "Data page checksum version:           1",
                "Data page checksum version:           0",
            );
        let cd = parse_controldata(&text).unwrap();
        assert_eq!(cd.cluster_state, ClusterState::ShutDownInRecovery);
        assert_eq!(cd.min_recovery_end_lsn, "0/3000148".parse().unwrap());
        assert_eq!(cd.min_recovery_end_timeline, 2);
        assert!(!cd.data_checksums);
        assert!(!cd.rewind_possible());
    }

    #[test]
    fn states() {
        assert_eq!(
            ClusterState::parse("in production"),
            ClusterState::InProduction
        );
        assert_eq!(
            ClusterState::parse("in archive recovery"),
            ClusterState::InArchiveRecovery
        );
        assert_eq!(
            ClusterState::parse("in crash recovery"),
            ClusterState::InCrashRecovery
        );
        assert_eq!(
            ClusterState::parse("shutting down"),
            ClusterState::ShuttingDown
        );
        assert_eq!(
            ClusterState::parse("starting up"),
            ClusterState::Other("starting up".into())
        );
    }

    #[test]
    fn reports_what_is_missing() {
        let e = parse_controldata("pg_control version number: 1300\n").unwrap_err();
        assert!(e.contains("Database system identifier"), "{e}");
        let bad = SHUTDOWN.replace("0/17414F0", "zz");
        let e = parse_controldata(&bad).unwrap_err();
        assert!(e.contains("not a WAL position"), "{e}");
    }
}
