//! Physical replication slots: list, create, drop, advance (all idempotent where it makes sense).

use pgbaton_core::Lsn;
use tokio_postgres::error::SqlState;

use super::{opt_lsn, Sql};
use crate::error::{Error, Result};
use crate::quote::check_slot_name;

/// One row of `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Slot name.
    pub name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    /// A client is streaming through it.
    pub active: bool,
    /// The walsender using it.
    pub active_pid: Option<i32>,
    /// Oldest WAL the slot keeps (`None` if never reserved).
    pub restart_lsn: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
}

const SLOTS_SQL: &str =
    "SELECT slot_name::text, slot_type, active, active_pid, restart_lsn::text, wal_status \
     FROM pg_replication_slots ORDER BY slot_name";

impl Sql {
    /// All replication slots, ordered by name.
    pub async fn slots(&self) -> Result<Vec<SlotInfo>> {
        let statement = self.prepared("list replication slots", SLOTS_SQL).await?;
        let rows = self
            .client
            .query(&statement, &[])
            .await
            .map_err(|e| self.err("list replication slots", e))?;
        rows.iter()
            .map(|r| {
                Ok(SlotInfo {
                    name: r.get(0),
                    slot_type: r.get(1),
                    active: r.get(2),
                    active_pid: r.get(3),
                    restart_lsn: opt_lsn("pg_replication_slots.restart_lsn", r.get(4))?,
                    wal_status: r.get(5),
                })
            })
            .collect()
    }

    /// One slot by name, `None` if it does not exist.
    pub async fn slot(&self, name: &str) -> Result<Option<SlotInfo>> {
        Ok(self.slots().await?.into_iter().find(|s| s.name == name))
    }

    /// Creates a physical slot that reserves WAL at once. Returns `false` when a physical slot
    /// of that name already exists; a logical one of that name is an error.
    pub async fn create_physical_slot(&self, name: &str) -> Result<bool> {
        check_slot_name(name)?;
        if let Some(s) = self.slot(name).await? {
            return if s.slot_type == "physical" {
                Ok(false)
            } else {
                Err(Error::SlotWrongType {
                    name: name.to_string(),
                    slot_type: s.slot_type,
                })
            };
        }
        match self
            .client
            .execute(
                "SELECT pg_create_physical_replication_slot($1, true)",
                &[&name],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => Ok(false),
            Err(e) => Err(self.err(&format!("create replication slot {name:?}"), e)),
        }
    }

    /// Drops a slot. Returns `false` when it did not exist. A slot in use is not dropped:
    /// [`Error::SlotActive`].
    pub async fn drop_slot(&self, name: &str) -> Result<bool> {
        check_slot_name(name)?;
        let Some(s) = self.slot(name).await? else {
            return Ok(false);
        };
        if s.active {
            return Err(Error::SlotActive {
                name: name.to_string(),
                pid: s.active_pid,
            });
        }
        match self
            .client
            .execute("SELECT pg_drop_replication_slot($1)", &[&name])
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(false),
            Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) => Err(Error::SlotActive {
                name: name.to_string(),
                pid: None,
            }),
            Err(e) => Err(self.err(&format!("drop replication slot {name:?}"), e)),
        }
    }

    /// Moves a slot's position forward to `to` (PostgreSQL caps it at what this server has;
    /// moving backwards is a no-op). Used to keep slots for other members on a standby so
    /// that after a promotion it already retains their WAL. Returns the slot's new position.
    pub async fn advance_slot(&self, name: &str, to: Lsn) -> Result<Option<Lsn>> {
        check_slot_name(name)?;
        let statement = self
            .prepared(
                "advance a replication slot",
                "SELECT end_lsn::text FROM pg_replication_slot_advance($1, $2::text::pg_lsn)",
            )
            .await?;
        let row = self
            .client
            .query_one(&statement, &[&name, &to.to_string()])
            .await
            .map_err(|e| self.err(&format!("advance replication slot {name:?}"), e))?;
        opt_lsn("pg_replication_slot_advance", row.get(0))
    }
}
