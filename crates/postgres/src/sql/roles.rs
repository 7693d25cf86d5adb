//! Roles pgbaton needs on the primary (the replication user, the pg_rewind user),
//! created without SQL injection.

use super::Sql;
use crate::error::{Error, Result};
use crate::quote::{quote_ident, quote_literal};

impl Sql {
    /// Makes sure role `user` exists with LOGIN, REPLICATION and password `password`.
    /// Creates it or alters it. Only on a primary. Returns `true` when the role was created.
    ///
    /// Only a SCRAM-SHA-256 verifier of the password reaches PostgreSQL, in a transaction
    /// whose statement logging is off: the password is never in a log.
    pub async fn ensure_replication_role(&self, user: &str, password: &str) -> Result<bool> {
        self.ensure_role(user, password, "LOGIN REPLICATION", &[])
            .await
    }

    /// Make sure the pg_rewind role `user` exists with this password: a plain login
    /// role granted only the functions pg_rewind calls (PostgreSQL 11+), so rewinds need
    /// no superuser. Idempotent. Returns `true` when the role was created.
    pub async fn ensure_rewind_role(&self, user: &str, password: &str) -> Result<bool> {
        const FUNCTIONS: [&str; 4] = [
            "pg_catalog.pg_ls_dir(text, boolean, boolean)",
            "pg_catalog.pg_stat_file(text, boolean)",
            "pg_catalog.pg_read_binary_file(text)",
            "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
        ];
        self.ensure_role(user, password, "LOGIN", &FUNCTIONS).await
    }

    /// Create or alter role `user` with `attributes` and `password`, then grant it
    /// EXECUTE on `functions`. Returns `true` when the role was created.
    async fn ensure_role(
        &self,
        user: &str,
        password: &str,
        attributes: &str,
        functions: &[&str],
    ) -> Result<bool> {
        if user.is_empty() || user.contains('\0') || password.contains('\0') {
            return Err(Error::invalid(
                "role name",
                user,
                "must be non-empty and without NUL bytes",
            ));
        }
        let exists = self
            .client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
            .await
            .map_err(|e| self.err("look up role", e))?
            .is_some();
        let verb = if exists { "ALTER" } else { "CREATE" };
        let role = quote_ident(user);
        // A SCRAM-SHA-256 verifier computed here, never the password: the statement
        // text may end up in the server log or pg_stat_statements. The statement's own
        // logging is switched off for the transaction as well.
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        let mut sql = String::from(
            "BEGIN; SET LOCAL log_statement = 'none'; SET LOCAL log_min_duration_statement = -1; SET LOCAL log_min_error_statement = 'panic';",
        );
        sql.push_str(&format!(
            "{verb} ROLE {role} WITH {attributes} PASSWORD {};",
            quote_literal(&verifier)
        ));
        for f in functions {
            sql.push_str(&format!("GRANT EXECUTE ON FUNCTION {f} TO {role};"));
        }
        sql.push_str("COMMIT;");
        if let Err(e) = self.client.batch_execute(&sql).await {
            // Leave no failed transaction block behind on this connection.
            let _ = self.client.batch_execute("ROLLBACK").await;
            return Err(self.err(&format!("{verb} ROLE {user:?}"), e));
        }
        Ok(!exists)
    }
}
