//! The one-call health and position probe, plus the primary's view of its standbys.

use pgbaton_core::Lsn;

use super::{opt_lsn, Sql};
use crate::error::{Error, Result};

/// The WAL receiver of a standby (`pg_stat_wal_receiver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalReceiver {
    /// Process id.
    pub pid: i32,
    /// `streaming`, `starting`, `waiting`, `restarting`, `stopping`, ...
    pub status: String,
    /// Upstream host as connected.
    pub sender_host: Option<String>,
    /// Upstream port.
    pub sender_port: Option<i32>,
    /// Slot it streams through.
    pub slot_name: Option<String>,
    /// Timeline of the last WAL received.
    pub received_tli: Option<u32>,
    /// Last WAL position written to disk.
    pub written_lsn: Option<Lsn>,
    /// Last WAL position flushed to disk.
    pub flushed_lsn: Option<Lsn>,
    /// Last WAL position reported by the upstream.
    pub latest_end_lsn: Option<Lsn>,
}

/// A snapshot of the local server, taken in two short queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `pg_is_in_recovery()`: true on a standby.
    pub in_recovery: bool,
    /// `server_version_num`, e.g. 150010.
    pub server_version_num: i32,
    /// `pg_control_system().system_identifier` as text.
    pub system_identifier: String,
    /// Best current timeline: on a primary the timeline of `pg_current_wal_lsn()`'s segment; on
    /// a standby the WAL receiver's `received_tli`, else the last restartpoint's timeline.
    pub timeline: u32,
    /// `pg_control_checkpoint().timeline_id` (lags behind right after a promotion).
    pub checkpoint_timeline: u32,
    /// `pg_current_wal_lsn()` on a primary; `None` on a standby.
    pub current_lsn: Option<Lsn>,
    /// `pg_last_wal_receive_lsn()` (standby; `None` if nothing streamed yet).
    pub receive_lsn: Option<Lsn>,
    /// `pg_last_wal_replay_lsn()` (standby; also kept after promotion).
    pub replay_lsn: Option<Lsn>,
    /// The WAL receiver, when one runs.
    pub wal_receiver: Option<WalReceiver>,
}

impl Probe {
    /// The position this member has: `current_lsn` on a primary, else the larger of
    /// received and replayed.
    pub fn wal_position(&self) -> Option<Lsn> {
        self.current_lsn
            .or_else(|| match (self.receive_lsn, self.replay_lsn) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            })
    }
}

/// A standby as the primary sees it (`pg_stat_replication`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationPeer {
    /// Walsender pid.
    pub pid: i32,
    /// The standby's `application_name` (its member name).
    pub application_name: String,
    /// Client IP address (`None` over a Unix socket).
    pub client_addr: Option<String>,
    /// `startup`, `catchup`, `streaming`, `backup`, `stopping`.
    pub state: Option<String>,
    /// Last WAL position sent.
    pub sent_lsn: Option<Lsn>,
    /// Last position the standby wrote.
    pub write_lsn: Option<Lsn>,
    /// Last position the standby flushed.
    pub flush_lsn: Option<Lsn>,
    /// Last position the standby replayed.
    pub replay_lsn: Option<Lsn>,
    /// `async`, `potential`, `sync` or `quorum`.
    pub sync_state: Option<String>,
    /// Priority in `synchronous_standby_names` (0 = async).
    pub sync_priority: Option<i32>,
    /// `reply_time` in µs since the Unix epoch, on the standby's clock: only its
    /// changes mean anything here (a new status reply arrived).
    pub reply_time_us: Option<i64>,
}

/// Timeline from a WAL file name like `000000020000000000000003`.
fn timeline_of_walfile(name: &str) -> Option<u32> {
    name.get(0..8).and_then(|h| u32::from_str_radix(h, 16).ok())
}

const PROBE_SQL: &str = "SELECT pg_is_in_recovery(), \
       current_setting('server_version_num')::int4, \
       (SELECT system_identifier::text FROM pg_control_system()), \
       (SELECT timeline_id FROM pg_control_checkpoint()), \
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, \
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END, \
       pg_last_wal_receive_lsn()::text, \
       pg_last_wal_replay_lsn()::text, \
       CASE WHEN pg_is_in_recovery() THEN (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int4) \
         FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$') END";

const RECEIVER_SQL: &str = "SELECT pid, status, sender_host, sender_port, slot_name, \
       received_tli, written_lsn::text, flushed_lsn::text, latest_end_lsn::text \
       FROM pg_stat_wal_receiver";

const REPLICATION_SQL: &str = "SELECT pid, coalesce(application_name, ''), host(client_addr), state, \
       sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text, sync_state, sync_priority, \
       (extract(epoch FROM reply_time) * 1000000)::int8 \
       FROM pg_stat_replication ORDER BY application_name, pid";

impl Sql {
    /// Takes a [`Probe`] of the server.
    pub async fn probe(&self) -> Result<Probe> {
        let statement = self.prepared("probe", PROBE_SQL).await?;
        // Both queries go out together (pipelined): one round trip.
        let (row, wal_receiver) =
            tokio::join!(self.client.query_one(&statement, &[]), self.wal_receiver());
        let row = row.map_err(|e| self.err("probe", e))?;
        let wal_receiver = wal_receiver?;
        let in_recovery: bool = row.get(0);
        let checkpoint_timeline: i32 = row.get(3);
        let walfile: Option<String> = row.get(5);
        let checkpoint_timeline = u32::try_from(checkpoint_timeline).unwrap_or(0);
        let timeline = match (&walfile, &wal_receiver) {
            (Some(f), _) => timeline_of_walfile(f).ok_or_else(|| Error::BadValue {
                what: "pg_walfile_name(pg_current_wal_lsn())".into(),
                value: f.clone(),
            })?,
            (
                None,
                Some(WalReceiver {
                    received_tli: Some(t),
                    ..
                }),
            ) => *t,
            // A standby without a WAL receiver (its primary is gone): the newest
            // timeline it holds WAL segments of. Its last restartpoint can still be on
            // the previous timeline long after it crossed a switch, which would make
            // it look as if it had missed a promotion.
            _ => {
                let segments: Option<i32> = row.get(8);
                segments
                    .and_then(|t| u32::try_from(t).ok())
                    .unwrap_or(0)
                    .max(checkpoint_timeline)
            }
        };
        Ok(Probe {
            in_recovery,
            server_version_num: row.get(1),
            system_identifier: row.get(2),
            timeline,
            checkpoint_timeline,
            current_lsn: opt_lsn("pg_current_wal_lsn()", row.get(4))?,
            receive_lsn: opt_lsn("pg_last_wal_receive_lsn()", row.get(6))?,
            replay_lsn: opt_lsn("pg_last_wal_replay_lsn()", row.get(7))?,
            wal_receiver,
        })
    }

    /// The WAL receiver (`pg_stat_wal_receiver`), `None` when none runs.
    pub async fn wal_receiver(&self) -> Result<Option<WalReceiver>> {
        let statement = self
            .prepared("read pg_stat_wal_receiver", RECEIVER_SQL)
            .await?;
        let rows = self
            .client
            .query(&statement, &[])
            .await
            .map_err(|e| self.err("read pg_stat_wal_receiver", e))?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let tli: Option<i32> = r.get(5);
        Ok(Some(WalReceiver {
            pid: r.get(0),
            status: r.get(1),
            sender_host: r.get(2),
            sender_port: r.get(3),
            slot_name: r.get(4),
            received_tli: tli.and_then(|t| u32::try_from(t).ok()),
            written_lsn: opt_lsn("pg_stat_wal_receiver.written_lsn", r.get(6))?,
            flushed_lsn: opt_lsn("pg_stat_wal_receiver.flushed_lsn", r.get(7))?,
            latest_end_lsn: opt_lsn("pg_stat_wal_receiver.latest_end_lsn", r.get(8))?,
        }))
    }

    /// The standbys connected to this server (`pg_stat_replication`).
    pub async fn replication(&self) -> Result<Vec<ReplicationPeer>> {
        let statement = self
            .prepared("read pg_stat_replication", REPLICATION_SQL)
            .await?;
        let rows = self
            .client
            .query(&statement, &[])
            .await
            .map_err(|e| self.err("read pg_stat_replication", e))?;
        rows.iter()
            .map(|r| {
                Ok(ReplicationPeer {
                    pid: r.get(0),
                    application_name: r.get(1),
                    client_addr: r.get(2),
                    state: r.get(3),
                    sent_lsn: opt_lsn("pg_stat_replication.sent_lsn", r.get(4))?,
                    write_lsn: opt_lsn("pg_stat_replication.write_lsn", r.get(5))?,
                    flush_lsn: opt_lsn("pg_stat_replication.flush_lsn", r.get(6))?,
                    replay_lsn: opt_lsn("pg_stat_replication.replay_lsn", r.get(7))?,
                    sync_state: r.get(8),
                    sync_priority: r.get(9),
                    reply_time_us: r.get(10),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walfile_timeline() {
        assert_eq!(timeline_of_walfile("000000020000000000000003"), Some(2));
        assert_eq!(timeline_of_walfile("0000000A0000000000000003"), Some(10));
        assert_eq!(timeline_of_walfile("xyz"), None);
    }

    #[test]
    fn wal_position_prefers_current_then_max() {
        let mut p = Probe {
            in_recovery: true,
            server_version_num: 150000,
            system_identifier: "1".into(),
            timeline: 1,
            checkpoint_timeline: 1,
            current_lsn: None,
            receive_lsn: Some(Lsn(10)),
            replay_lsn: Some(Lsn(20)),
            wal_receiver: None,
        };
        assert_eq!(p.wal_position(), Some(Lsn(20)));
        p.current_lsn = Some(Lsn(5));
        assert_eq!(p.wal_position(), Some(Lsn(5)));
    }
}
