//! Config files: pgbaton's own `pgbaton.conf`, the include line in `postgresql.conf`,
//! cleaning `postgresql.auto.conf`, and `standby.signal`.
//!
//! `pg_basebackup` and `pg_rewind` copy `postgresql.conf`, `postgresql.auto.conf` (and our
//! `pgbaton.conf`) from the source, so all of this is re-applied before every start by
//! [`Instance::prepare_config`].

use std::collections::{BTreeMap, BTreeSet};

use crate::conninfo::StandbyTarget;
use crate::datadir::DataDirState;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::instance::Instance;
use crate::quote::{check_conf_key, format_conf_value};

/// Name of the file pgbaton owns inside the data directory.
pub const MANAGED_CONF: &str = "pgbaton.conf";

/// The line that makes `postgresql.conf` read [`MANAGED_CONF`] last.
pub const INCLUDE_LINE: &str = "include_if_exists = 'pgbaton.conf'";

const INCLUDE_COMMENT: &str =
    "# Added by pgbaton: its managed settings (pgbaton.conf) must be read last.";

/// Settings removed from `postgresql.auto.conf` before every start, whatever the caller manages,
/// because `pg_basebackup -R` or an old `ALTER SYSTEM` may have left them there.
pub const ALWAYS_CLEARED_AUTO_KEYS: &[&str] = &["primary_conninfo", "primary_slot_name"];

/// Renders the managed config file text for `settings` (pure).
pub fn render_managed_conf(settings: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::from(
        "# Managed by pgbaton and rewritten before every start. Do not edit:\n\
         # change pgbaton's configuration instead.\n",
    );
    for (k, v) in settings {
        check_conf_key(k)?;
        out.push_str(&format!("{k} = {}\n", format_conf_value(v)));
    }
    Ok(out)
}

/// Returns `text` with [`INCLUDE_LINE`] as its last setting, or `None` when it already is (pure).
/// Other lines are kept as they are; an earlier copy of our include (and its comment) is moved.
pub fn with_include_last(text: &str) -> Option<String> {
    let last_setting = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'));
    if last_setting == Some(INCLUDE_LINE) {
        return None;
    }
    let mut out: String = text
        .lines()
        .filter(|l| l.trim() != INCLUDE_LINE && l.trim() != INCLUDE_COMMENT)
        .map(|l| format!("{l}\n"))
        .collect();
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(INCLUDE_COMMENT);
    out.push('\n');
    out.push_str(INCLUDE_LINE);
    out.push('\n');
    Some(out)
}

/// Returns `text` without the settings named in `keys` (case-insensitive), or `None` when none
/// were there (pure). Understands `key = value` and `key value` lines.
pub fn without_keys(text: &str, keys: &BTreeSet<String>) -> Option<String> {
    let mut removed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim_start();
        let name: String = t
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        if !name.is_empty() && keys.contains(&name.to_ascii_lowercase()) {
            removed = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    removed.then_some(out)
}

impl Instance {
    /// The settings the instance itself owns: `listen_addresses`, `port`,
    /// `unix_socket_directories`. They always go into the managed file and win over the caller's.
    pub fn identity_settings(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("listen_addresses".into(), self.listen_addresses.clone());
        m.insert("port".into(), self.port.to_string());
        m.insert(
            "unix_socket_directories".into(),
            self.socket_dir.to_string_lossy().into_owned(),
        );
        m
    }

    /// Rewrites `<data_dir>/pgbaton.conf` with `settings` plus [`Instance::identity_settings`]
    /// (mode 0600, owned by the OS user). Returns whether the file changed.
    /// Keys must be plain parameter names; values are quoted for you.
    pub fn write_managed_conf(&self, settings: &BTreeMap<String, String>) -> Result<bool> {
        let mut all = settings.clone();
        all.extend(self.identity_settings());
        let text = render_managed_conf(&all)?;
        fsutil::write_if_changed(
            &self.data_file(MANAGED_CONF),
            text.as_bytes(),
            0o600,
            self.run_as.as_ref(),
        )
    }

    /// Makes `postgresql.conf` end with [`INCLUDE_LINE`] (appended once; the DBA's lines stay).
    /// Creates the file if missing. Returns whether it changed.
    pub fn ensure_conf_include(&self) -> Result<bool> {
        let path = self.data_file("postgresql.conf");
        let text = fsutil::read_optional(&path)?.unwrap_or_default();
        match with_include_last(&text) {
            None => Ok(false),
            Some(new) => {
                fsutil::write_if_changed(&path, new.as_bytes(), 0o600, self.run_as.as_ref())
            }
        }
    }

    /// Removes the lines setting any of `keys` from `postgresql.auto.conf` (which PostgreSQL
    /// reads after everything else), so they cannot override pgbaton's. Returns whether it changed.
    pub fn clear_auto_conf_keys(&self, keys: &[&str]) -> Result<bool> {
        let path = self.data_file("postgresql.auto.conf");
        let Some(text) = fsutil::read_optional(&path)? else {
            return Ok(false);
        };
        let set: BTreeSet<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        match without_keys(&text, &set) {
            None => Ok(false),
            Some(new) => {
                tracing::info!(file = %path.display(), ?keys, "removing settings overridden by pgbaton from postgresql.auto.conf");
                fsutil::write_if_changed(&path, new.as_bytes(), 0o600, self.run_as.as_ref())
            }
        }
    }

    /// Creates (`true`) or removes (`false`) `standby.signal`. Returns whether it changed.
    pub fn set_standby_signal(&self, standby: bool) -> Result<bool> {
        let path = self.data_file("standby.signal");
        if standby {
            if path.exists() {
                return Ok(false);
            }
            fsutil::write_if_changed(&path, b"", 0o600, self.run_as.as_ref())
        } else {
            fsutil::remove_if_exists(&path)
        }
    }

    /// Everything to do to the config files before a start (or before a reload that changes
    /// what to follow), in one call:
    /// 1. writes `pgbaton.conf` with `settings`, the standby's
    ///    [`StandbyTarget::recovery_settings`] when `standby` is `Some`, and the identity settings;
    /// 2. makes `postgresql.conf` include it last;
    /// 3. removes every key written in step 1, and `primary_conninfo`/`primary_slot_name`, from
    ///    `postgresql.auto.conf` (pgbaton's values must win);
    /// 4. creates `standby.signal` for `Some`, removes it for `None` (the server starts as a
    ///    primary!).
    ///
    /// Refuses anything but an initialized data directory. Returns whether any file changed.
    pub fn prepare_config(
        &self,
        settings: &BTreeMap<String, String>,
        standby: Option<&StandbyTarget>,
    ) -> Result<bool> {
        match self.data_dir_state()? {
            DataDirState::Initialized { .. } => {}
            DataDirState::NotAPostgresDir { entries } => {
                return Err(Error::NotAPostgresDir {
                    path: self.data_dir.clone(),
                    entries,
                })
            }
            DataDirState::Missing | DataDirState::Empty => {
                return Err(Error::io(
                    "configure data directory",
                    &self.data_dir,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no cluster there yet"),
                ))
            }
        }
        let mut all = settings.clone();
        if let Some(st) = standby {
            all.extend(st.recovery_settings()?);
        }
        let mut changed = self.write_managed_conf(&all)?;
        changed |= self.ensure_conf_include()?;
        let mut clear: Vec<&str> = all.keys().map(String::as_str).collect();
        clear.extend(["listen_addresses", "port", "unix_socket_directories"]);
        clear.extend(ALWAYS_CLEARED_AUTO_KEYS);
        changed |= self.clear_auto_conf_keys(&clear)?;
        changed |= self.set_standby_signal(standby.is_some())?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_managed_conf() {
        let mut m = BTreeMap::new();
        m.insert("port".to_string(), "5433".to_string());
        m.insert(
            "primary_conninfo".to_string(),
            "host='h' user='u'".to_string(),
        );
        let text = render_managed_conf(&m).unwrap();
        assert!(text.contains("port = '5433'\n"));
        assert!(text.contains("primary_conninfo = 'host=''h'' user=''u'''\n"));
        m.insert("bad key".into(), "x".into());
        assert!(render_managed_conf(&m).is_err());
    }

    #[test]
    fn include_appended_once_and_kept_last() {
        let original = "shared_buffers = 128MB\n# comment\n";
        let once = with_include_last(original).unwrap();
        assert!(once.starts_with(original));
        assert!(once.ends_with(&format!("{INCLUDE_LINE}\n")));
        assert_eq!(with_include_last(&once), None);
        // Trailing comments after it are fine.
        assert_eq!(with_include_last(&format!("{once}# later\n")), None);
        // A DBA setting after it: move ours to the end, once.
        let moved = with_include_last(&format!("{once}work_mem = 4MB\n")).unwrap();
        assert_eq!(moved.matches(INCLUDE_LINE).count(), 1);
        assert!(moved.contains("work_mem = 4MB"));
        assert!(moved.ends_with(&format!("{INCLUDE_LINE}\n")));
        // Empty file.
        assert!(with_include_last("")
            .unwrap()
            .ends_with(&format!("{INCLUDE_LINE}\n")));
    }

    #[test]
    fn removes_auto_conf_keys() {
        let text = "# Do not edit this file manually!\n\
                    primary_conninfo = 'host=x'\n\
                    work_mem = '8MB'\n\
                    Primary_Slot_Name = 's'\n\
                    primary_conninfo_extra = 'keep'\n";
        let keys: BTreeSet<String> = ["primary_conninfo", "primary_slot_name"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = without_keys(text, &keys).unwrap();
        assert_eq!(
            out,
            "# Do not edit this file manually!\nwork_mem = '8MB'\nprimary_conninfo_extra = 'keep'\n"
        );
        assert_eq!(without_keys(&out, &keys), None);
    }
}
