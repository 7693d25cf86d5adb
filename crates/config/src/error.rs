//! The errors of this crate: one [`Problem`] per thing wrong, gathered in a [`ConfigError`].

use std::fmt;

/// One thing wrong with a config file.
///
/// Its `Display` is the text after `file:` (or `file:line:column:`), e.g.
/// `postgres.listen: "127.0.0.1" is not a host:port address (e.g. 127.0.0.1:5432)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path of the offending setting, e.g. `postgres.listen`; empty for the
    /// whole file.
    pub key: String,
    /// 1-based line and column in the file, when known.
    pub location: Option<(usize, usize)>,
    /// The complete sentence: what is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem with the value of `key`; the message is shown as `key: message`.
    pub fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        let key = key.into();
        let message = message.into();
        let message = if key.is_empty() {
            message
        } else {
            format!("{key}: {message}")
        };
        Problem {
            key,
            location: None,
            message,
        }
    }

    /// A problem whose message is shown as written (it names the key itself).
    pub fn raw(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            location: None,
            message: message.into(),
        }
    }

    /// The same problem, pinned to a 1-based line and column.
    pub fn with_location(mut self, line: usize, column: usize) -> Self {
        self.location = Some((line, column));
        self
    }

    /// The full line as printed for the file `origin`.
    pub fn render(&self, origin: &str) -> String {
        match self.location {
            Some((line, col)) => format!("{origin}:{line}:{col}: {}", self.message),
            None => format!("{origin}: {}", self.message),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read the config file: {error}")]
    Read {
        /// The path as given.
        origin: String,
        /// The I/O error (in the message, not chained, so it is printed once).
        error: std::io::Error,
    },
    /// The file was read but is not a valid config. Display prints every problem, one per
    /// line, each starting with the file name.
    #[error("{}", render_all(origin, problems))]
    Invalid {
        /// The file name (or other origin) the problems refer to.
        origin: String,
        /// Everything found wrong, in file order where known.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// Every problem found (empty for a read error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_all(origin: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.render(origin))
        .collect::<Vec<_>>()
        .join("\n")
}
