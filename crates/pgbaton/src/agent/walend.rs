//! Where a crashed or fenced data directory's WAL ends, read once per stop: it decides
//! whether the member can follow a new primary without pg_rewind.

use pgbaton_core::Lsn;

/// The last answer, for the checkpoint it was read from (the WAL of a stopped server
/// does not change until pgbaton itself rewinds, clones or starts it).
#[derive(Debug, Default)]
pub(super) struct WalEndCache {
    seen: Option<((u32, Lsn), Option<Lsn>)>,
}

impl WalEndCache {
    /// Forget the answer (the server ran, or the data directory was replaced).
    pub(super) fn clear(&mut self) {
        self.seen = None;
    }
}

impl super::Agent {
    /// Where the last valid WAL record on timeline `tli` starts, reading from the
    /// checkpoint at `from`; `None` when unknown. Logged once per stop.
    pub(super) async fn last_wal_record(&mut self, tli: u32, from: Lsn) -> Option<Lsn> {
        if let Some((key, end)) = self.wal_end.seen {
            if key == (tli, from) {
                return end;
            }
        }
        let t0 = tokio::time::Instant::now();
        let end = match self.pg.last_wal_record(tli, from).await {
            Ok(end) => end,
            Err(e) => {
                tracing::warn!("cannot read the WAL to its end: {e}");
                None
            }
        };
        let ms = t0.elapsed().as_millis();
        match end {
            Some(at) => tracing::info!(
                "PostgreSQL was not shut down cleanly: its last WAL record (timeline {tli}) \
                 starts at {at} (read in {ms} ms)"
            ),
            None => tracing::info!(
                "PostgreSQL was not shut down cleanly and the end of its WAL (timeline {tli}) \
                 cannot be told for sure (read for {ms} ms): it will be rewound if it must \
                 follow another primary"
            ),
        }
        self.wal_end.seen = Some(((tli, from), end));
        end
    }
}
