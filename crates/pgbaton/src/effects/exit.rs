//! Notices a dead postmaster between HA cycles without polling: a pidfd of the
//! postmaster (Linux 5.3+) becomes readable the moment it exits
//! ([`pgbaton_postgres::ExitWatch`]). Where no pidfd can be opened (and in the
//! simulator, whose [`super::Pg`] has no real processes), the agent looks at
//! `postmaster.pid` every 100 ms instead.

pub use pgbaton_postgres::ExitWatch;

/// Resolves when the watched process exits; never, without a watch.
pub async fn exited(watch: Option<&ExitWatch>) {
    match watch {
        Some(w) => w.exited().await,
        None => std::future::pending().await,
    }
}
