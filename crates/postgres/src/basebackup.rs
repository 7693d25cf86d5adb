//! Cloning a member from an upstream with `pg_basebackup` (through a replication slot).

use std::time::Duration;

use crate::conninfo::ConnTarget;
use crate::error::Result;
use crate::instance::Instance;
use crate::quote::check_slot_name;

impl Instance {
    /// Copies the upstream's cluster into the (missing or empty) data directory:
    /// `pg_basebackup -D <data> -X stream -c fast [-S <slot>] -d <conninfo> --no-password`,
    /// run as the OS user so every file is owned by it. The password comes from
    /// `source.passfile`, never the command line.
    ///
    /// `slot` should be the member's physical slot on the upstream (create it first with
    /// [`crate::Sql::create_physical_slot`]) so WAL written during the copy is kept.
    /// `timeout` of `None` waits as long as the copy takes; on timeout pg_basebackup is killed.
    ///
    /// On failure pg_basebackup removes what it wrote; the error carries its output.
    /// Afterwards call [`Instance::prepare_config`] with a [`crate::StandbyTarget`]: the copied
    /// `postgresql.conf`, `postgresql.auto.conf` and `pgbaton.conf` are the source's.
    pub async fn basebackup(
        &self,
        source: &ConnTarget,
        slot: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if let Some(s) = slot {
            check_slot_name(s)?;
        }
        let conninfo = source.conninfo()?;
        self.ensure_empty_data_dir("pg_basebackup")?;
        let mut cmd = self.command("pg_basebackup");
        cmd.env("PGPASSFILE", &source.passfile)
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-X")
            .arg("stream")
            .arg("-c")
            .arg("fast")
            .arg("--no-password");
        if let Some(s) = slot {
            cmd.arg("-S").arg(s);
        }
        cmd.arg("-d").arg(&conninfo);
        let action = format!(
            "base backup from {}:{} into {}",
            source.host,
            source.port,
            self.data_dir.display()
        );
        self.run(&action, "pg_basebackup", cmd, timeout, false)
            .await
            .map(|_| ())
    }
}
