//! A postmaster whose data directory vanished from its path (safety review finding 9).
//!
//! A renamed data directory, a lazy unmount or a replaced bind mount make the path look
//! empty, and `postmaster.pid` unreachable, while the postmaster keeps its working
//! directory and open files and goes on accepting writes. Read naively, that is a
//! stopped member: the leader would let its key go and a replica would be promoted
//! beside a live primary. So the agent remembers the postmaster it last saw (pid and
//! start time, which a reused pid cannot fake) and, when the path no longer leads to
//! it, stops it itself before anything else is decided.

use crate::effects::Pg;
use std::time::Duration;
use tokio::time::Instant;

/// A postmaster seen running for this member's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pid: i32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat`, field 22).
    started: u64,
}

impl Seen {
    /// Remember the postmaster `pid` of `pg`, if it runs.
    pub fn of(pg: &dyn Pg, pid: u32) -> Option<Seen> {
        let pid = i32::try_from(pid).ok()?;
        Some(Seen {
            pid,
            started: pg.process_start(pid)?,
        })
    }

    /// Whether that very process still runs (not a zombie, not a reused pid).
    pub fn alive(&self, pg: &dyn Pg) -> bool {
        pg.process_start(self.pid) == Some(self.started)
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Immediate shutdown (SIGQUIT), then wait up to `timeout` for it to exit.
    pub async fn stop(&self, pg: &dyn Pg, timeout: Duration) -> bool {
        let _ = pg.quit_postmaster(self.pid);
        let deadline = Instant::now() + timeout;
        while self.alive(pg) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// Start time of a live, non-zombie process, from `/proc/<pid>/stat`.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 (starttime) is at index 19.
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let pg = crate::effects::LocalPg(pgbaton_postgres::Instance {
            bin_dir: "/nonexistent".into(),
            data_dir: "/nonexistent".into(),
            run_as: None,
            listen_addresses: "127.0.0.1".into(),
            port: 1,
            socket_dir: "/nonexistent".into(),
            superuser: pgbaton_postgres::Credentials {
                user: "u".into(),
                password: "p".into(),
            },
            log_file: "/nonexistent".into(),
        });
        let me = Seen::of(&pg, std::process::id()).expect("self");
        assert!(me.alive(&pg));
        let other = Seen {
            started: me.started + 1,
            ..me
        };
        assert!(!other.alive(&pg));
    }
}
