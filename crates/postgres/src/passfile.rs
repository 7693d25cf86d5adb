//! `.pgpass`-format password files, so passwords never appear on command lines or in conninfo.

use std::fmt;
use std::path::Path;

use crate::error::Result;
use crate::fsutil;
use crate::instance::Instance;
use crate::quote::escape_passfile_field;

/// One password file line. The database field is always `*` (it also matches the
/// `replication` pseudo-database used by streaming and base backups).
#[derive(Clone, PartialEq, Eq)]
pub struct PassfileEntry {
    /// Host name or address as it appears in the connection (`*` for any).
    pub host: String,
    /// Port, `None` for any.
    pub port: Option<u16>,
    /// Role name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for PassfileEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassfileEntry")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Renders password file text (pure): `host:port:*:user:password` per entry, with `:` and `\`
/// escaped. The host `*` and the role `*` are kept as wildcards.
pub fn render_passfile(entries: &[PassfileEntry]) -> Result<String> {
    let mut out = String::new();
    for e in entries {
        let port = e.port.map(|p| p.to_string()).unwrap_or_else(|| "*".into());
        out.push_str(&format!(
            "{}:{}:*:{}:{}\n",
            escape_passfile_field(&e.host)?,
            port,
            escape_passfile_field(&e.user)?,
            escape_passfile_field(&e.password)?
        ));
    }
    Ok(out)
}

impl Instance {
    /// Writes a password file at `path` (mode 0600, owned by the OS user, atomically; the
    /// parent directory must exist and be traversable by that user). Keep it outside the data
    /// directory. Returns whether it changed.
    pub fn write_passfile(&self, path: &Path, entries: &[PassfileEntry]) -> Result<bool> {
        let text = render_passfile(entries)?;
        fsutil::write_if_changed(path, text.as_bytes(), 0o600, self.run_as.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let text = render_passfile(&[
            PassfileEntry {
                host: "fd00::1".into(),
                port: Some(5432),
                user: "repl".into(),
                password: r"p:a\ss".into(),
            },
            PassfileEntry {
                host: "*".into(),
                port: None,
                user: "postgres".into(),
                password: "x".into(),
            },
        ])
        .unwrap();
        assert_eq!(
            text,
            "fd00\\:\\:1:5432:*:repl:p\\:a\\\\ss\n*:*:*:postgres:x\n"
        );
        let bad = PassfileEntry {
            host: "h".into(),
            port: None,
            user: "u".into(),
            password: "a\nb".into(),
        };
        assert!(render_passfile(&[bad]).is_err());
    }

    #[test]
    fn debug_hides_password() {
        let e = PassfileEntry {
            host: "h".into(),
            port: None,
            user: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{e:?}").contains("secret"));
    }
}
