//! Exit codes: one per kind of failure, so scripts and systemd can tell a typo from an
//! outage. The numbers follow sysexits(3) where one fits; `pgbaton check` has its own
//! (Nagios) codes.

use std::fmt;

/// The kind of failure, which decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything not listed below (1).
    Failure,
    /// Bad arguments on the command line (2, as clap uses for its own usage errors).
    Usage,
    /// Refused by the cluster's state: unknown or lagging member, no healthy primary, a
    /// member name already in use, another system identifier (65, EX_DATAERR).
    Refused,
    /// The store could not be reached (69, EX_UNAVAILABLE).
    StoreUnreachable,
    /// The request was made, but the cluster did not get there in time (75, EX_TEMPFAIL).
    TimedOut,
    /// The config file is missing, unreadable or invalid (78, EX_CONFIG).
    BadConfig,
}

impl Kind {
    /// The process exit code of this kind.
    pub fn code(self) -> u8 {
        match self {
            Kind::Failure => 1,
            Kind::Usage => 2,
            Kind::Refused => 65,
            Kind::StoreUnreachable => 69,
            Kind::TimedOut => 75,
            Kind::BadConfig => 78,
        }
    }
}

/// The exit codes as `--help` and the docs show them.
pub const HELP: &str = "\
Exit codes:
  0   success
  1   any other failure
  2   usage: bad arguments or option values
  65  refused by the cluster's state (unknown, down or lagging member, no healthy
      primary, member name in use, another system identifier)
  69  the store is unreachable
  75  timed out: the request was made, the cluster did not get there in time
  78  bad config file (missing, unreadable or invalid)
  `pgbaton check` exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios).";

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Exit {
    /// What kind of failure it is.
    pub kind: Kind,
    /// The sentence printed for the operator.
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// A refusal by the cluster's state (exit 65).
pub fn refused(message: impl Into<String>) -> anyhow::Error {
    Exit {
        kind: Kind::Refused,
        message: message.into(),
    }
    .into()
}

/// A wait that ran out of time (exit 75).
pub fn timed_out(message: impl Into<String>) -> anyhow::Error {
    Exit {
        kind: Kind::TimedOut,
        message: message.into(),
    }
    .into()
}

/// A config the process cannot work with, found after loading it (exit 78).
pub fn bad_config(message: impl Into<String>) -> anyhow::Error {
    Exit {
        kind: Kind::BadConfig,
        message: message.into(),
    }
    .into()
}

/// A bad command-line value (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        kind: Kind::Usage,
        message: message.into(),
    }
    .into()
}

/// The kind of `err`: the first error in its chain that has one decides.
pub fn classify(err: &anyhow::Error) -> Kind {
    use crate::cli::ops::RequestError as R;
    use pgbaton_store::StoreError as S;
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Exit>() {
            return e.kind;
        }
        if cause
            .downcast_ref::<pgbaton_config::ConfigError>()
            .is_some()
        {
            return Kind::BadConfig;
        }
        match cause.downcast_ref::<S>() {
            Some(S::Unreachable(_)) => return Kind::StoreUnreachable,
            Some(_) => return Kind::Failure,
            None => {}
        }
        match cause.downcast_ref::<R>() {
            Some(R::Invalid(_)) => return Kind::Usage,
            Some(R::Refused(_) | R::Conflict(_) | R::NotFound(_)) => return Kind::Refused,
            Some(R::Store(_)) => return Kind::StoreUnreachable,
            Some(R::Damaged(_)) => return Kind::Failure,
            None => {}
        }
    }
    Kind::Failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_typed_error_in_the_chain_decides() {
        let e = anyhow::Error::new(pgbaton_store::StoreError::Unreachable("x".into()))
            .context("reading the cluster");
        assert_eq!(classify(&e), Kind::StoreUnreachable);
        let e = refused("no").context("switchover");
        assert_eq!(classify(&e).code(), 65);
        let e = anyhow::Error::new(crate::cli::ops::RequestError::Invalid("bad".into()));
        assert_eq!(classify(&e), Kind::Usage);
        assert_eq!(classify(&anyhow::anyhow!("plain")), Kind::Failure);
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            Kind::Failure,
            Kind::Usage,
            Kind::Refused,
            Kind::StoreUnreachable,
            Kind::TimedOut,
            Kind::BadConfig,
        ];
        let mut codes: Vec<u8> = all.iter().map(|k| k.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
