//! What the source reads from MySQL's catalog: tables, their columns and
//! keys (`information_schema`), and the server's binlog settings.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::declared_types::DeclaredColumn;

/// How a column's values are read (see [`super::values`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// An integer of `bytes` bytes.
    Int {
        /// Storage width: 1, 2, 3, 4 or 8.
        bytes: u8,
        /// `UNSIGNED`.
        unsigned: bool,
    },
    /// `DECIMAL`/`NUMERIC`: exact digits.
    Decimal,
    /// `FLOAT`.
    Float,
    /// `DOUBLE`.
    Double,
    /// `YEAR`.
    Year,
    /// `DATE`.
    Date,
    /// `DATETIME`.
    DateTime,
    /// `TIMESTAMP`.
    Timestamp,
    /// `TIME` with `fsp` fraction digits.
    Time {
        /// Fraction digits.
        fsp: u8,
    },
    /// Character data in a character set.
    Text {
        /// The column's character set.
        encoding: &'static encoding_rs::Encoding,
    },
    /// Byte strings; `BINARY(n)` is padded to `n`.
    Binary {
        /// `BINARY(n)`'s `n`.
        pad_to: Option<usize>,
    },
    /// `BIT(n)`.
    Bit {
        /// `n`.
        bits: u32,
    },
    /// `ENUM` with its labels in order.
    Enum {
        /// The labels.
        labels: Vec<String>,
    },
    /// `SET` with its labels in order.
    Set {
        /// The labels.
        labels: Vec<String>,
    },
    /// JSON: MySQL's binary `JSON` (`binary`), or MariaDB's text checked by
    /// `json_valid`.
    Json {
        /// MySQL's own type (the binlog holds its binary form).
        binary: bool,
    },
    /// Spatial types and anything else: bytes as stored.
    Other,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// MySQL's full type (`bigint(20) unsigned`, `enum('a','b')`).
    pub column_type: String,
    /// How its values are read.
    pub kind: Kind,
}

/// A table the source copies and follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The database (schema).
    pub database: String,
    /// The table name.
    pub name: String,
    /// The stream its records carry: the bare name in the URL's database,
    /// else `database.name`.
    pub stream: String,
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// Positions of the primary key columns, in key order.
    pub key: Vec<usize>,
    /// Declared PostgreSQL types, beside `columns`.
    pub declared: Vec<String>,
    /// The key column names, comma-separated (the `sluice-key` header).
    pub key_names: String,
}

impl Table {
    /// `database`.`name`, quoted for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.database), quote(&self.name))
    }

    /// The columns as declared to sinks.
    pub fn declared_columns(&self) -> Vec<DeclaredColumn> {
        self.columns
            .iter()
            .zip(&self.declared)
            .map(|(c, t)| DeclaredColumn {
                name: c.name.clone(),
                sql_type: t.clone(),
                source_type: Some(c.column_type.clone()),
            })
            .collect()
    }
}

/// Quotes an identifier with backticks.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The character sets a text column may have, as encodings.
pub fn encoding_of(charset: &str) -> Option<&'static encoding_rs::Encoding> {
    use encoding_rs::*;
    Some(match charset {
        "utf8" | "utf8mb3" | "utf8mb4" => UTF_8,
        // MySQL's latin1 is Windows-1252; ascii is a subset of it.
        "latin1" | "ascii" => WINDOWS_1252,
        "latin2" => ISO_8859_2,
        "latin5" => WINDOWS_1254,
        "latin7" => ISO_8859_13,
        "greek" => ISO_8859_7,
        "hebrew" => ISO_8859_8,
        "cp1250" => WINDOWS_1250,
        "cp1251" => WINDOWS_1251,
        "cp1256" => WINDOWS_1256,
        "cp1257" => WINDOWS_1257,
        "koi8r" => KOI8_R,
        "koi8u" => KOI8_U,
        "sjis" | "cp932" => SHIFT_JIS,
        "ujis" | "eucjpms" => EUC_JP,
        "euckr" => EUC_KR,
        "gbk" | "gb2312" => GBK,
        "gb18030" => GB18030,
        "big5" => BIG5,
        "ucs2" | "utf16" => UTF_16BE,
        "utf16le" => UTF_16LE,
        _ => return None,
    })
}

/// The labels of `enum('a','b''c')` or `set(...)`.
pub fn labels(column_type: &str) -> Vec<String> {
    let inner = column_type
        .split_once('(')
        .map(|(_, r)| r.strip_suffix(')').unwrap_or(r))
        .unwrap_or("");
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        match (c, in_quote) {
            ('\'', false) => in_quote = true,
            ('\'', true) if chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            ('\'', true) => {
                in_quote = false;
                out.push(std::mem::take(&mut cur));
            }
            ('\\', true) => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (c, true) => cur.push(c),
            _ => {}
        }
    }
    out
}

/// The number in `bit(10)`, `binary(16)`.
fn width(column_type: &str) -> Option<u64> {
    column_type
        .split_once('(')?
        .1
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// One row of `information_schema.COLUMNS`.
#[derive(Debug, Clone)]
pub struct ColumnRow {
    /// `COLUMN_NAME`.
    pub name: String,
    /// `DATA_TYPE`, lower case.
    pub data_type: String,
    /// `COLUMN_TYPE`.
    pub column_type: String,
    /// `CHARACTER_SET_NAME`.
    pub charset: Option<String>,
    /// `NUMERIC_PRECISION`.
    pub precision: Option<u64>,
    /// `NUMERIC_SCALE`.
    pub scale: Option<u64>,
    /// `DATETIME_PRECISION`.
    pub fsp: Option<u64>,
    /// Checked by `json_valid` (MariaDB's `JSON`).
    pub json_checked: bool,
}

/// How a column is read and its declared PostgreSQL type, or why it cannot
/// be read.
pub fn classify(c: &ColumnRow) -> Result<(Kind, String), String> {
    let unsigned = c.column_type.to_ascii_lowercase().contains("unsigned");
    let fsp = c.fsp.unwrap_or(0).min(6);
    let int = |bytes: u8| {
        let declared = match (bytes, unsigned) {
            (1, _) | (2, false) => "smallint",
            (2, true) | (3, _) | (4, false) => "integer",
            (4, true) | (8, false) => "bigint",
            _ => "numeric(20,0)",
        };
        (Kind::Int { bytes, unsigned }, declared.to_string())
    };
    Ok(match c.data_type.as_str() {
        "tinyint" | "bool" | "boolean" => int(1),
        "smallint" => int(2),
        "mediumint" => int(3),
        "int" | "integer" => int(4),
        "bigint" => int(8),
        "decimal" | "numeric" => (
            Kind::Decimal,
            format!(
                "numeric({},{})",
                c.precision.unwrap_or(10),
                c.scale.unwrap_or(0)
            ),
        ),
        "float" => (Kind::Float, "real".into()),
        "double" | "real" => (Kind::Double, "double precision".into()),
        "year" => (Kind::Year, "smallint".into()),
        "date" => (Kind::Date, "date".into()),
        "datetime" => (
            Kind::DateTime,
            format!("timestamp({fsp}) without time zone"),
        ),
        "timestamp" => (Kind::Timestamp, format!("timestamp({fsp}) with time zone")),
        "time" => (Kind::Time { fsp: fsp as u8 }, "interval".into()),
        "bit" => {
            let bits = width(&c.column_type).unwrap_or(1).clamp(1, 64) as u32;
            (Kind::Bit { bits }, format!("bit({bits})"))
        }
        "enum" => (
            Kind::Enum {
                labels: labels(&c.column_type),
            },
            "text".into(),
        ),
        "set" => (
            Kind::Set {
                labels: labels(&c.column_type),
            },
            "text".into(),
        ),
        "json" => (Kind::Json { binary: true }, "jsonb".into()),
        "binary" => (
            Kind::Binary {
                pad_to: width(&c.column_type).map(|n| n as usize),
            },
            "bytea".into(),
        ),
        "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            (Kind::Binary { pad_to: None }, "bytea".into())
        }
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
            if c.json_checked {
                (Kind::Json { binary: false }, "jsonb".into())
            } else {
                match c.charset.as_deref() {
                    // A text type with the binary charset is bytes.
                    None | Some("binary") => (Kind::Binary { pad_to: None }, "bytea".into()),
                    Some(cs) => {
                        let encoding = encoding_of(cs).ok_or_else(|| {
                            format!(
                                "column `{}` uses the character set `{cs}`, which this source cannot decode: convert the column (ALTER TABLE ... CONVERT TO CHARACTER SET utf8mb4)",
                                c.name
                            )
                        })?;
                        (Kind::Text { encoding }, "text".into())
                    }
                }
            }
        }
        _ => (Kind::Other, "bytea".into()),
    })
}

/// Reads a table's columns and primary key. The error says what to do.
pub async fn describe(
    conn: &mut Conn,
    database: &str,
    name: &str,
    stream: String,
    mariadb: bool,
) -> Result<Table, String> {
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
    );
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, CHARACTER_SET_NAME, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (database, name),
        )
        .await
        .map_err(|e| format!("cannot read the columns of `{database}.{name}`: {e}"))?;
    if rows.is_empty() {
        return Err(format!(
            "table `{database}.{name}` does not exist (or this user cannot see it: GRANT SELECT ON `{database}`.* TO the user)"
        ));
    }
    let checks: Vec<String> = if mariadb {
        conn.exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (database, name),
        )
        .await
        .map_err(|e| format!("cannot read the checks of `{database}.{name}`: {e}"))?
    } else {
        Vec::new()
    };
    let keys: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (database, name),
        )
        .await
        .map_err(|e| format!("cannot read the primary key of `{database}.{name}`: {e}"))?;
    let mut columns = Vec::with_capacity(rows.len());
    let mut declared = Vec::with_capacity(rows.len());
    for (name_, data_type, column_type, charset, precision, scale, fsp) in rows {
        let json_checked = checks
            .iter()
            .any(|c| c.replace(' ', "") == format!("json_valid({})", quote(&name_)));
        let row = ColumnRow {
            name: name_,
            data_type,
            column_type,
            charset,
            precision,
            scale,
            fsp,
            json_checked,
        };
        let (kind, decl) = classify(&row).map_err(|m| format!("table `{database}.{name}`: {m}"))?;
        columns.push(Column {
            name: row.name,
            column_type: row.column_type,
            kind,
        });
        declared.push(decl);
    }
    if keys.is_empty() {
        return Err(format!(
            "table `{database}.{name}` has no primary key: rows cannot be matched to their changes (add one: ALTER TABLE ... ADD PRIMARY KEY (...))"
        ));
    }
    let key = keys
        .iter()
        .map(|k| {
            columns.iter().position(|c| &c.name == k).ok_or_else(|| {
                format!("primary key column `{k}` of `{database}.{name}` is not a column")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let key_names = key
        .iter()
        .map(|&i| columns[i].name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    Ok(Table {
        database: database.to_string(),
        name: name.to_string(),
        stream,
        columns,
        key,
        declared,
        key_names,
    })
}

/// What the server is, from one query.
#[derive(Debug, Clone)]
pub struct Server {
    /// `@@version`.
    pub version: String,
    /// MariaDB rather than MySQL.
    pub mariadb: bool,
    /// `@@server_id`.
    pub server_id: u32,
}

/// Problems that stop a change data capture before it starts, each a
/// sentence that says what to do; and what the server is.
pub async fn preflight(conn: &mut Conn, reader_id: u32) -> Result<Server, Vec<String>> {
    let mut problems = Vec::new();
    let row: Option<(String, i64, String, String, u32)> = conn
        .query_first(
            "SELECT @@version, @@global.log_bin, @@global.binlog_format, @@global.binlog_row_image, @@global.server_id",
        )
        .await
        .map_err(|e| vec![format!("cannot read the server's settings: {e}")])?;
    let Some((version, log_bin, format, image, server_id)) = row else {
        return Err(vec!["the server did not answer `SELECT @@version`".into()]);
    };
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    if log_bin == 0 {
        problems.push(
            "the binary log is off: start the server with `log_bin` (and `binlog_format = ROW`) so changes can be read".into(),
        );
    }
    if !format.eq_ignore_ascii_case("ROW") {
        problems.push(format!(
            "`binlog_format` is {format}, not ROW: set `binlog_format = ROW` in the server's configuration (and SET GLOBAL binlog_format = 'ROW'), so the binlog holds each changed row"
        ));
    }
    if !image.eq_ignore_ascii_case("FULL") {
        problems.push(format!(
            "`binlog_row_image` is {image}, not FULL: set `binlog_row_image = FULL`, so updates and deletes carry every column"
        ));
    }
    if server_id == reader_id {
        problems.push(format!(
            "the server's own `server_id` is {server_id}, the id this source registers with: set `server_id` in [source] to another number"
        ));
    }
    // Privileges. Reading the binlog's position needs REPLICATION CLIENT
    // (BINLOG MONITOR on MariaDB 10.5+): tried, which settles it.
    if let Err(mysql_async::Error::Server(e)) = conn.query_drop("SHOW MASTER STATUS").await
        && matches!(e.code, 1227 | 1142 | 1044)
    {
        problems.push(format!(
            "this user lacks the {} privilege, which reading the binlog position needs: GRANT {} ON *.* TO the user",
            if mariadb { "BINLOG MONITOR (REPLICATION CLIENT)" } else { "REPLICATION CLIENT" },
            if mariadb { "BINLOG MONITOR" } else { "REPLICATION CLIENT" }
        ));
    }
    // Reading the binlog needs REPLICATION SLAVE, which only a replica
    // connection would try: read from the grants, unless they come
    // through roles (`GRANT `role` TO ...`), which this does not follow.
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.unwrap_or_default();
    let upper: Vec<String> = grants.iter().map(|g| g.to_ascii_uppercase()).collect();
    let through_roles = upper
        .iter()
        .any(|g| g.starts_with("GRANT `") || g.starts_with("GRANT '"));
    let replication = upper.iter().any(|g| {
        g.contains(" ON *.*")
            && (g.contains("ALL PRIVILEGES")
                || g.contains("REPLICATION SLAVE")
                || g.contains("REPLICATION REPLICA"))
    });
    if !replication && !through_roles {
        problems.push(
            "this user lacks the REPLICATION SLAVE privilege, which reading the binlog needs: GRANT REPLICATION SLAVE ON *.* TO the user".into(),
        );
    }
    if problems.is_empty() {
        Ok(Server {
            version,
            mariadb,
            server_id,
        })
    } else {
        Err(problems)
    }
}
