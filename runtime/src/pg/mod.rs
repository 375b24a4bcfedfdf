//! What the PostgreSQL source, sink and `verify` share: connecting with
//! messages a user can act on, table names, quoting, LSNs, and the one
//! conversion between PostgreSQL's text form and record values (used for
//! the snapshot, the change stream and the target alike, so a value reads
//! the same whichever way it came).

pub mod columns;
pub mod conninfo;
pub mod copy_text;
pub mod values;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, NoTls};

use crate::sql::quote_ident;

/// A table, schema-qualified (`public` when the name has no schema).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    /// The schema.
    pub schema: String,
    /// The table.
    pub name: String,
}

impl TableName {
    /// Parses `table` or `schema.table` (no quoting: names are taken as
    /// written, case included).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (schema, name) = match s.split_once('.') {
            Some((schema, name)) => (schema, name),
            None => ("public", s),
        };
        if schema.is_empty() || name.is_empty() || name.contains('.') {
            return Err(format!(
                "`{s}` is not a table name: write `table` or `schema.table`"
            ));
        }
        Ok(TableName {
            schema: schema.to_string(),
            name: name.to_string(),
        })
    }

    /// `"schema"."table"`, quoted for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The stream name records of this table carry: the table name, with
    /// its schema unless that is `public`.
    pub fn stream(&self) -> String {
        if self.schema == "public" {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Quotes an SQL string literal (for the few statements that take no
/// parameters, such as `COPY` and replication commands).
pub fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// A WAL position (`16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a WAL position (like `16/B374D848`)");
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
            return Err(bad());
        }
        Ok(Lsn(hi << 32 | lo))
    }
}

/// Where a connection goes, for messages (`postgres@127.0.0.1:5432/legacy`),
/// never with the password.
pub fn describe_url(url: &str) -> String {
    match conninfo::complete(url, &conninfo::ProcessEnv).map(|s| s.config) {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    postgres::config::Host::Tcp(h) => h.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!(
                "{}@{host}:{port}/{}",
                c.get_user().unwrap_or("?"),
                c.get_dbname().unwrap_or("?")
            )
        }
        Err(_) => "(unparsable url)".into(),
    }
}

/// What went wrong talking to PostgreSQL, in words that say what to do.
pub fn explain(e: &postgres::Error, url: &str) -> String {
    let at = describe_url(url);
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let hint = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            "; check the user and password in `url` (and pg_hba.conf)"
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            "; check the database name in `url`"
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            "; grant the privilege to the user in `url`, or connect as a user that has it"
        } else if *code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE {
            ""
        } else if *code == SqlState::TOO_MANY_CONNECTIONS {
            "; raise max_connections or max_wal_senders on the server"
        } else {
            ""
        };
        let hint = if db.message().contains("no encryption") {
            "; the server takes this user over TLS only: set `sslmode=require` (or verify-ca / verify-full with `sslrootcert`) in `url`"
        } else {
            hint
        };
        let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
        return format!("PostgreSQL {at}: {}{detail}{hint}", db.message());
    }
    if e.is_closed() {
        return format!("PostgreSQL {at}: the connection was closed");
    }
    let text = e.to_string();
    let source = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    if source.contains("certificate verify failed") || text.contains("certificate verify failed") {
        return format!(
            "PostgreSQL {at}: TLS: the server's certificate was not accepted: it is not signed by the CA in `sslrootcert`, or (`sslmode=verify-full`) it does not name the host in `url`; check both, or use `sslmode=verify-ca` (no host name check) or `require` (no check)"
        );
    }
    if source.contains("refused") || text.contains("refused") {
        return format!(
            "cannot connect to PostgreSQL {at}: connection refused: is the server running and listening there?"
        );
    }
    if source.is_empty() {
        format!("PostgreSQL {at}: {text}")
    } else {
        format!("PostgreSQL {at}: {text}: {source}")
    }
}

/// True if the error means the connection is gone (server restart,
/// network), so reconnecting may help.
pub fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(db) => {
            let c = db.code().code();
            // 08: connection exception; 57P01..57P03: admin shutdown,
            // crash shutdown, cannot connect now (starting up).
            c.starts_with("08") || c.starts_with("57P")
        }
        None => true,
    }
}

/// Connects a plain (non-replication) session: UTC, ISO dates, so text
/// values parse the same on every server.
/// Settings the `url` leaves out come from libpq's environment variables
/// and password file ([`conninfo`]); TLS as its `sslmode` says (default
/// `prefer`, as libpq).
pub fn connect(url: &str, application: &str) -> Result<Client, String> {
    let conninfo::Settings { mut config, tls } = conninfo::complete(url, &conninfo::ProcessEnv)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name(application);
    config.options(
        "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3",
    );
    match tls.mode {
        conninfo::SslMode::Disable => config.connect(NoTls),
        _ => config.connect(tls_connector(&tls)?),
    }
    .map_err(|e| explain(&e, url))
}

/// The TLS connector for `tls`: certificates checked against its CA for
/// `verify-ca` (and the host name for `verify-full`), not checked for
/// `prefer` and `require`, as libpq does.
fn tls_connector(tls: &conninfo::Tls) -> Result<postgres_openssl::MakeTlsConnector, String> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut b =
        SslConnector::builder(SslMethod::tls()).map_err(|e| format!("cannot set up TLS: {e}"))?;
    match tls.mode {
        conninfo::SslMode::VerifyCa | conninfo::SslMode::VerifyFull => {
            if let Some(ca) = &tls.root_cert {
                b.set_ca_file(ca).map_err(|e| {
                    format!("cannot read the CA certificate `{}`: {e}", ca.display())
                })?;
            }
            b.set_verify(SslVerifyMode::PEER);
        }
        _ => b.set_verify(SslVerifyMode::NONE),
    }
    let mut connector = postgres_openssl::MakeTlsConnector::new(b.build());
    let check_host = tls.mode == conninfo::SslMode::VerifyFull;
    connector.set_callback(move |config, _| {
        config.set_verify_hostname(check_host);
        Ok(())
    });
    Ok(connector)
}

/// Keeps trying [`connect`] with exponential backoff (up to 30 s between
/// tries) while the error looks like a connection problem and `give_up`
/// stays false. Each failure is logged.
pub fn connect_with_backoff(
    url: &str,
    application: &str,
    give_up: &dyn Fn() -> bool,
) -> Result<Client, String> {
    let mut delay = Duration::from_millis(200);
    loop {
        match connect(url, application) {
            Ok(c) => return Ok(c),
            Err(e) if give_up() => return Err(e),
            Err(e) if is_retryable_message(&e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "PostgreSQL unreachable; reconnecting");
                sleep_unless(delay, give_up);
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sleeps up to `d`, waking early when `give_up` turns true.
pub fn sleep_unless(d: Duration, give_up: &dyn Fn() -> bool) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until && !give_up() {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True for connection failures worth retrying (not bad credentials or a
/// missing database).
pub fn is_retryable_message(e: &str) -> bool {
    !(e.contains("password")
        || e.contains("authentication")
        || e.contains("does not exist")
        || e.contains("not a PostgreSQL connection string")
        || e.contains("permission denied"))
}

/// The connection string of a replication session (`replication=database`)
/// for the same server, user and database as `url`.
pub fn replication_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        format!(
            "{url}{sep}replication=database&application_name=sluice-cdc&options=-c%20TimeZone%3DUTC%20-c%20DateStyle%3DISO%20-c%20extra_float_digits%3D3"
        )
    } else {
        format!(
            "{url} replication=database application_name=sluice-cdc options='-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3'"
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_through_its_text_form() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert!("x/1".parse::<Lsn>().is_err());
        assert!("1FFFFFFFF/0".parse::<Lsn>().is_err());
    }

    #[test]
    fn table_names_default_to_the_public_schema() {
        let t = TableName::parse("customers").unwrap();
        assert_eq!(t.schema, "public");
        assert_eq!(t.stream(), "customers");
        assert_eq!(t.quoted(), "\"public\".\"customers\"");
        let t = TableName::parse("crm.Orders").unwrap();
        assert_eq!(t.stream(), "crm.Orders");
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse(".x").is_err());
    }

    #[test]
    fn literals_and_identifiers_are_quoted() {
        assert_eq!(quote_literal("o'brien"), "'o''brien'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn replication_url_keeps_the_original_parameters() {
        assert!(
            replication_url("postgres://u:p@h:1/db?sslmode=disable")
                .starts_with("postgres://u:p@h:1/db?sslmode=disable&replication=database")
        );
        assert!(replication_url("host=h user=u").contains(" replication=database"));
    }

    #[test]
    fn urls_are_described_without_the_password() {
        let d = describe_url("postgres://sluice:secret@127.0.0.1:5433/legacy");
        assert_eq!(d, "sluice@127.0.0.1:5433/legacy");
    }
}
