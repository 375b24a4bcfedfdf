//! What the source checks and reads from PostgreSQL's catalog before it
//! starts: server settings, privileges, tables, keys, the publication.

use postgres::Client;

use crate::pg::TableName;
use crate::pg::columns::{Column, read_columns};
use crate::sql::quote_ident;

/// A source table as the catalog describes it.
#[derive(Debug, Clone)]
pub struct Table {
    /// Its name.
    pub name: TableName,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary key, in key order.
    pub key: Vec<usize>,
}

impl Table {
    /// The columns as declared to sinks (see [`crate::declared_types`]).
    pub fn declared_columns(&self) -> Vec<crate::declared_types::DeclaredColumn> {
        self.columns
            .iter()
            .map(|c| crate::declared_types::DeclaredColumn {
                name: c.name.clone(),
                sql_type: c.portable_type.clone(),
                source_type: (c.portable_type != c.type_name).then(|| c.type_name.clone()),
            })
            .collect()
    }

    /// The key column names, comma-separated (the `sluice-key` header).
    pub fn key_names(&self) -> String {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Problems found before starting, each a sentence that says what to do.
pub fn preflight(client: &mut Client, config: &super::PostgresSourceConfig) -> Vec<String> {
    let mut problems = Vec::new();
    match client.query_one("SHOW wal_level", &[]) {
        Ok(row) => {
            let level: String = row.get(0);
            if level != "logical" {
                problems.push(format!(
                    "the server's `wal_level` is `{level}`, change data capture needs `logical`: set `wal_level = logical` in postgresql.conf (or `ALTER SYSTEM SET wal_level = logical`) and restart PostgreSQL"
                ));
            }
        }
        Err(e) => problems.push(format!("cannot read `wal_level`: {e}")),
    }
    match client.query_one(
        "SELECT rolreplication OR rolsuper, current_user::text FROM pg_roles WHERE rolname = current_user",
        &[],
    ) {
        Ok(row) => {
            let can: bool = row.get(0);
            let user: String = row.get(1);
            if !can {
                problems.push(format!(
                    "user `{user}` may not use logical replication: run `ALTER ROLE {} REPLICATION` as a superuser, or connect as a user that has it",
                    quote_ident(&user)
                ));
            }
        }
        Err(e) => problems.push(format!("cannot read the user's privileges: {e}")),
    }
    if config.tables.is_empty() {
        problems.push("`tables` is empty: name at least one table".into());
    }
    for t in &config.tables {
        match TableName::parse(t) {
            Ok(name) => {
                if let Err(e) = describe_table(client, &name) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(e),
        }
    }
    problems
}

/// Reads a source table: it must exist, be readable and have a primary key.
pub fn describe_table(client: &mut Client, name: &TableName) -> Result<Table, String> {
    let err = |e: postgres::Error| format!("cannot read table `{name}` from the catalog: {e}");
    let Some((columns, key)) = read_columns(client, name).map_err(err)? else {
        return Err(format!(
            "table `{name}` does not exist (or is not a table): check `tables` and the database in `url`"
        ));
    };
    let readable: bool = client
        .query_one(
            "SELECT has_table_privilege($1::text, 'SELECT')",
            &[&name.quoted()],
        )
        .map_err(err)?
        .get(0);
    if !readable {
        return Err(format!(
            "the user may not read table `{name}`: run `GRANT SELECT ON {} TO <user>`",
            name.quoted()
        ));
    }
    if key.is_empty() {
        return Err(format!(
            "table `{name}` has no primary key: Sluice keys every row by it (to resume a snapshot, apply updates and deletes); add one with `ALTER TABLE {} ADD PRIMARY KEY (...)`",
            name.quoted()
        ));
    }
    Ok(Table {
        name: name.clone(),
        columns,
        key,
    })
}

/// Makes sure the publication exists and covers every table.
pub fn ensure_publication(
    client: &mut Client,
    publication: &str,
    tables: &[Table],
) -> Result<(), String> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .map_err(|e| format!("cannot read publications: {e}"))?
        .is_some();
    let list = tables
        .iter()
        .map(|t| t.name.quoted())
        .collect::<Vec<_>>()
        .join(", ");
    let hint = |e: postgres::Error| {
        let denied = e
            .as_db_error()
            .is_some_and(|d| d.code() == &postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
        if denied {
            format!(
                "the user may not create or change publication `{publication}` ({e}): a table owner or superuser must run `CREATE PUBLICATION {} FOR TABLE {list}`",
                quote_ident(publication)
            )
        } else {
            format!("cannot set up publication `{publication}`: {e}")
        }
    };
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {list}",
                quote_ident(publication)
            ))
            .map_err(hint)?;
        tracing::info!(publication, tables = %list, "created publication");
        return Ok(());
    }
    let published: Vec<(String, String)> = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&publication],
        )
        .map_err(|e| format!("cannot read publication `{publication}`: {e}"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let missing: Vec<&Table> = tables
        .iter()
        .filter(|t| {
            !published
                .iter()
                .any(|(s, n)| *s == t.name.schema && *n == t.name.name)
        })
        .collect();
    if !missing.is_empty() {
        let add = missing
            .iter()
            .map(|t| t.name.quoted())
            .collect::<Vec<_>>()
            .join(", ");
        client
            .batch_execute(&format!(
                "ALTER PUBLICATION {} ADD TABLE {add}",
                quote_ident(publication)
            ))
            .map_err(hint)?;
        tracing::info!(publication, tables = %add, "added tables to the publication");
    }
    Ok(())
}

/// The slot's state: `None` if it does not exist, else its plugin and
/// confirmed position.
pub fn slot_state(client: &mut Client, slot: &str) -> Result<Option<(String, String)>, String> {
    client
        .query_opt(
            "SELECT coalesce(plugin, '')::text, coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .map(|r| r.map(|r| (r.get(0), r.get(1))))
        .map_err(|e| format!("cannot read replication slots: {e}"))
}

/// Drops a slot (ours, left by an earlier run that is being reset).
pub fn drop_slot(client: &mut Client, slot: &str) -> Result<(), String> {
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .map(|_| ())
        .map_err(|e| {
            let text = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            slot_in_use(slot, &text)
                .unwrap_or_else(|| format!("cannot drop the replication slot `{slot}`: {text}"))
        })
}

/// When PostgreSQL's `text` says the slot is held by another connection
/// (`replication slot "x" is active for PID 123`), the message a user
/// needs: another run of this pipeline is still going.
pub fn slot_in_use(slot: &str, text: &str) -> Option<String> {
    let (_, after) = text.split_once("is active for PID ")?;
    let pid: String = after.chars().take_while(char::is_ascii_digit).collect();
    Some(format!(
        "replication slot `{slot}` is in use by another connection (server process {pid}): another run of this pipeline is still streaming from it. Stop that run first; if it is gone for good, end the connection with `SELECT pg_terminate_backend({pid})`"
    ))
}

/// The server's current WAL position, and the WAL `slot` keeps (from its
/// restart position; `None` without the slot).
pub fn wal_position(
    client: &mut Client,
    slot: &str,
) -> Result<(crate::pg::Lsn, Option<u64>), String> {
    let row = client
        .query_one(
            "SELECT pg_current_wal_lsn()::text,
                    (SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8
                     FROM pg_replication_slots WHERE slot_name = $1)",
            &[&slot],
        )
        .map_err(|e| e.to_string())?;
    let text: String = row.get(0);
    let retained: Option<i64> = row.get(1);
    Ok((text.parse()?, retained.map(|r| r.max(0) as u64)))
}

/// A logical replication slot, as `sluice slot list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Its name.
    pub name: String,
    /// The server process streaming from it, if any.
    pub active_pid: Option<i32>,
    /// The position confirmed by its consumer.
    pub confirmed: Option<String>,
    /// WAL the server keeps for it.
    pub retained_bytes: Option<u64>,
}

/// The logical slots of the connection's database.
pub fn list_slots(client: &mut Client) -> Result<Vec<SlotInfo>, String> {
    let rows = client
        .query(
            "SELECT slot_name::text, active_pid, confirmed_flush_lsn::text,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8
             FROM pg_replication_slots
             WHERE slot_type = 'logical' AND database = current_database()
             ORDER BY slot_name",
            &[],
        )
        .map_err(|e| format!("cannot read replication slots: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| SlotInfo {
            name: r.get(0),
            active_pid: r.get(1),
            confirmed: r.get(2),
            retained_bytes: r.get::<_, Option<i64>>(3).map(|b| b.max(0) as u64),
        })
        .collect())
}
