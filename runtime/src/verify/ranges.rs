//! `verify` by key ranges, with checksums the databases compute.
//!
//! A source table whose rows keep their primary key through the plugins
//! (the target's key columns hold the source key's values) is cut into
//! ranges of about [`RANGE_ROWS`] keys. Each side of each range gets a
//! checksum computed where the rows are: PostgreSQL counts the rows and
//! folds a hash of each visible row version (`(tableoid, ctid, xmin)`, see
//! [`pg_hash`]) with `bit_xor`, over an index range scan; a SQLite target
//! is read in-process and its values hashed in Rust. The source's
//! and the target's sums cannot be compared with each other (the plugins
//! change the rows), so each is compared with what it was when the range
//! was last found identical ([`super::baseline`]): a range whose two sums
//! are unchanged is still identical, and only the other ranges are read
//! row by row, through the plugins, and compared as the full comparison
//! does ([`super::compare`]). The first verify of a table compares every
//! range; later ones, and `--follow` rounds, re-check what changed.
//!
//! A range is recorded as identical only when its sums are the same
//! before and after its rows were compared, so rows written by a live sync
//! during the comparison are not mistaken for the rows that were compared.
//!
//! The two sides' ranges hold the same keys only where the two databases
//! order keys alike. Ranges are used for integer, text and UUID keys, text
//! only where both sides order bytes alike (a `C` collation, or the same
//! collation in two PostgreSQL databases); other tables, and tables whose
//! plugins change keys or route rows to other tables, are compared in full.

use std::collections::{HashMap, HashSet};
use std::hash::Hasher as _;
use std::time::{Duration, Instant};

use sluice_codec::Record;

use super::baseline::{Counts, RangeState, Settled, Sum, TableState};
use super::spill::{Key, Row};
use super::{Sums, TableReport, Target, compare, hex};
use crate::pg::{self, TableName, quote_literal, values};
use crate::plugin::TransformSlot;
use crate::sources::postgres::catalog::Table;
use crate::sources::postgres::snapshot::key_columns;
use crate::sql::quote_ident;

/// Source rows per range when a table is cut into ranges.
pub const RANGE_ROWS: usize = 5_000;
/// A range that has grown past this many source rows is cut again.
const MAX_RANGE_ROWS: i64 = 4 * RANGE_ROWS as i64;
/// How often progress is logged, and the baseline written (so that an
/// interrupted verify goes on from there).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What kind of key column, for ordering across databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Int,
    Text,
    Uuid,
}

fn key_kind(oid: u32) -> Option<KeyKind> {
    match oid {
        20 | 21 | 23 => Some(KeyKind::Int),
        25 | 1043 => Some(KeyKind::Text),
        2950 => Some(KeyKind::Uuid),
        _ => None,
    }
}

/// Collations that order UTF-8 text by its bytes, as SQLite does.
fn byte_order(collation: &str) -> bool {
    matches!(
        collation.to_ascii_lowercase().as_str(),
        "c" | "posix" | "c.utf-8" | "c.utf8" | "ucs_basic" | "pg_c_utf8"
    )
}

/// How the target side of a table is read by range.
pub(super) enum TargetSide {
    /// A PostgreSQL table; `key` of `table` is the target's key columns.
    Postgres { table: Table },
    /// A SQLite table and its key columns; `ints[i]`: bind bounds of key
    /// column `i` as integers.
    Sqlite {
        table: String,
        key: Vec<String>,
        ints: Vec<bool>,
    },
}

/// A condition on the target's rows: SQL and, for SQLite, its parameters.
pub(super) enum TargetFilter {
    Postgres(String),
    Sqlite(String, Vec<rusqlite::types::Value>),
}

/// The collation a text column of a PostgreSQL table orders by (`""` for
/// other types).
fn collation(
    client: &mut postgres::Client,
    table: &TableName,
    column: &str,
) -> anyhow::Result<String> {
    let row = client.query_one(
        "SELECT CASE
                  WHEN a.attcollation = 0 THEN ''
                  WHEN co.collname <> 'default' THEN co.collname::text
                  WHEN coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'i'
                    THEN 'icu:' || coalesce(to_jsonb(d) ->> 'daticulocale', '')
                  ELSE d.datcollate::text
                END
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_collation co ON co.oid = a.attcollation
         JOIN pg_database d ON d.datname = current_database()
         WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3",
        &[&table.schema, &table.name, &column],
    )?;
    Ok(row.get(0))
}

/// Whether `source` can be compared by ranges with `target_table` (its key
/// columns `key`), and how its target side is read; `Err`: why not.
pub(super) fn plan(
    source_client: &mut postgres::Client,
    source: &Table,
    target: &mut Target,
    target_table: &str,
    key: &[String],
) -> anyhow::Result<Result<TargetSide, String>> {
    if source.key.is_empty() {
        return Ok(Err("the source table has no primary key".into()));
    }
    let not_the_source_key = || {
        Err(format!(
            "the target's key ({}) is not the source's primary key",
            key.join(", ")
        ))
    };
    let mut kinds = Vec::new();
    let mut source_collations = Vec::new();
    for &i in &source.key {
        let c = &source.columns[i];
        let Some(kind) = key_kind(c.type_oid) else {
            return Ok(Err(format!(
                "key column `{}` is of type {}: ranges are used for integer, text and UUID keys",
                c.name, c.type_name
            )));
        };
        kinds.push(kind);
        source_collations.push(if kind == KeyKind::Text {
            collation(source_client, &source.name, &c.name)?
        } else {
            String::new()
        });
    }
    match target {
        Target::Postgres { client, .. } => {
            let name = TableName::parse(target_table).map_err(anyhow::Error::msg)?;
            let Some((columns, pk)) = pg::columns::read_columns(client, &name)? else {
                return Ok(Err("the target table does not exist".into()));
            };
            if key.len() != source.key.len() {
                return Ok(not_the_source_key());
            }
            let pk_names: Vec<&str> = pk.iter().map(|&i| columns[i].name.as_str()).collect();
            if pk_names != key.iter().map(String::as_str).collect::<Vec<_>>() {
                return Ok(Err(format!(
                    "the target's key ({}) is not its primary key",
                    key.join(", ")
                )));
            }
            for (n, &i) in pk.iter().enumerate() {
                let c = &columns[i];
                let ok = match (kinds[n], key_kind(c.type_oid)) {
                    (KeyKind::Int, Some(KeyKind::Int)) | (KeyKind::Uuid, Some(KeyKind::Uuid)) => {
                        true
                    }
                    (KeyKind::Text | KeyKind::Uuid, Some(KeyKind::Text)) => {
                        let theirs = collation(client, &name, &c.name)?;
                        let ours = &source_collations[n];
                        (byte_order(&theirs) && (kinds[n] == KeyKind::Uuid || byte_order(ours)))
                            || (kinds[n] == KeyKind::Text && theirs == *ours)
                    }
                    _ => false,
                };
                if !ok {
                    return Ok(Err(format!(
                        "key column `{}` does not order alike on both sides (type {} here, {} in the target, or another collation)",
                        source.columns[source.key[n]].name,
                        source.columns[source.key[n]].type_name,
                        c.type_name
                    )));
                }
            }
            Ok(Ok(TargetSide::Postgres {
                table: Table {
                    name,
                    columns,
                    key: pk,
                },
            }))
        }
        Target::Sqlite(conn) => {
            let sql: Option<String> = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [target_table],
                    |r| r.get(0),
                )
                .ok();
            let Some(sql) = sql else {
                return Ok(Err("the target table does not exist".into()));
            };
            if key.len() != source.key.len() {
                return Ok(not_the_source_key());
            }
            if sql.to_ascii_uppercase().contains("COLLATE") {
                return Ok(Err(
                    "the target table declares a collation: its keys may not order as the source's"
                        .into(),
                ));
            }
            for (n, kind) in kinds.iter().enumerate() {
                if *kind == KeyKind::Text && !byte_order(&source_collations[n]) {
                    return Ok(Err(format!(
                        "key column `{}` orders by collation `{}` in the source, by bytes in SQLite",
                        source.columns[source.key[n]].name, source_collations[n]
                    )));
                }
            }
            if !sqlite_key_indexed(conn, target_table, key)? {
                return Ok(Err(format!(
                    "the target has no index on its key ({})",
                    key.join(", ")
                )));
            }
            Ok(Ok(TargetSide::Sqlite {
                table: target_table.to_string(),
                key: key.to_vec(),
                ints: kinds.iter().map(|k| *k == KeyKind::Int).collect(),
            }))
        }
    }
}

/// True when the SQLite table's primary key, or one of its indexes, is
/// exactly `key` (so range conditions on it are index lookups).
fn sqlite_key_indexed(
    conn: &rusqlite::Connection,
    table: &str,
    key: &[String],
) -> anyhow::Result<bool> {
    let mut pk: Vec<(i64, String)> = conn
        .prepare(&format!("PRAGMA table_info({})", quote_ident(table)))?
        .query_map([], |r| Ok((r.get::<_, i64>(5)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    pk.retain(|(n, _)| *n > 0);
    pk.sort();
    if pk
        .iter()
        .map(|(_, c)| c.as_str())
        .eq(key.iter().map(String::as_str))
    {
        return Ok(true);
    }
    let indexes: Vec<String> = conn
        .prepare(&format!("PRAGMA index_list({})", quote_ident(table)))?
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<_>>()?;
    for index in indexes {
        let cols: Vec<String> = conn
            .prepare(&format!("PRAGMA index_info({})", quote_ident(&index)))?
            .query_map([], |r| r.get::<_, String>(2))?
            .collect::<rusqlite::Result<_>>()?;
        if cols
            .iter()
            .map(String::as_str)
            .eq(key.iter().map(String::as_str))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `(k1, k2) > (v1, v2) AND (k1, k2) <= (w1, w2)` for the key columns of
/// a PostgreSQL table (`TRUE` for the whole table).
fn pg_filter(table: &Table, after: Option<&[String]>, until: Option<&[String]>) -> String {
    let cols = key_columns(table);
    let literals = |values: &[String]| {
        table
            .key
            .iter()
            .zip(values)
            .map(|(&i, v)| format!("{}::{}", quote_literal(v), table.columns[i].cast_type))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if let Some(v) = after {
        parts.push(format!("({cols}) > ({})", literals(v)));
    }
    if let Some(v) = until {
        parts.push(format!("({cols}) <= ({})", literals(v)));
    }
    if parts.is_empty() {
        "TRUE".into()
    } else {
        parts.join(" AND ")
    }
}

impl TargetSide {
    fn filter(&self, after: Option<&[String]>, until: Option<&[String]>) -> TargetFilter {
        match self {
            TargetSide::Postgres { table } => {
                TargetFilter::Postgres(pg_filter(table, after, until))
            }
            TargetSide::Sqlite { key, ints, .. } => {
                let cols = key
                    .iter()
                    .map(|k| quote_ident(k))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut params = Vec::new();
                let mut parts = Vec::new();
                for (op, bound) in [(">", after), ("<=", until)] {
                    let Some(values) = bound else { continue };
                    let marks: Vec<String> = values
                        .iter()
                        .zip(ints)
                        .map(|(v, int)| {
                            params.push(match v.parse::<i64>() {
                                Ok(i) if *int => rusqlite::types::Value::Integer(i),
                                _ => rusqlite::types::Value::Text(v.clone()),
                            });
                            format!("?{}", params.len())
                        })
                        .collect();
                    parts.push(format!("({cols}) {op} ({})", marks.join(", ")));
                }
                let sql = if parts.is_empty() {
                    "1".to_string()
                } else {
                    parts.join(" AND ")
                };
                TargetFilter::Sqlite(sql, params)
            }
        }
    }

    fn table_name(&self) -> String {
        match self {
            TargetSide::Postgres { table } => table.name.to_string(),
            TargetSide::Sqlite { table, .. } => table.clone(),
        }
    }
}

/// How PostgreSQL fingerprints a row: by the identity of its visible
/// version, `(tableoid, ctid, xmin)`. PostgreSQL writes a new row version
/// for every insert and update (with the writing transaction in `xmin`,
/// at a new `ctid`), so any change to a row changes its fingerprint, and a
/// delete takes it out of the range; this costs about a third of hashing
/// every column (the columns are not even read). A rewrite of the table
/// (`VACUUM FULL`, `CLUSTER`, a restore) changes every fingerprint, which
/// only makes the next verify compare everything again. The fingerprints
/// are only ever compared with the same table's own earlier ones.
fn pg_hash(client: &mut postgres::Client) -> anyhow::Result<&'static str> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])?
        .get(0);
    if version < 140000 {
        // No `bit_xor` before 14: a sum of 32-bit hashes (no overflow
        // below 2^31 rows a range).
        return Ok(
            "sum(hashtext(t.tableoid::text || ' ' || t.ctid::text || ' ' || t.xmin::text)::int8)::int8",
        );
    }
    Ok(
        match client.query("SELECT hashtidextended('(0,1)'::tid, 1)", &[]) {
            Ok(_) => {
                "bit_xor(hashtidextended(t.ctid, (t.xmin::text::int8 << 32) # t.tableoid::int8))"
            }
            Err(e) if pg::is_connection_error(&e) => return Err(e.into()),
            Err(_) => {
                "bit_xor(hashtextextended(t.tableoid::text || ' ' || t.ctid::text || ' ' || t.xmin::text, 0))"
            }
        },
    )
}

fn pg_sum(
    client: &mut postgres::Client,
    table: &Table,
    hash: &str,
    filter: &str,
) -> anyhow::Result<Sum> {
    let sql = format!(
        "SELECT count(*)::int8, coalesce({hash}, 0)::int8 FROM {} t WHERE {filter}",
        table.name.quoted()
    );
    let row = client.query_one(sql.as_str(), &[])?;
    Ok(Sum {
        rows: row.get(0),
        hash: row.get(1),
    })
}

/// The checksum of the SQLite rows `filter` selects, hashed in Rust.
fn sqlite_sum(
    conn: &rusqlite::Connection,
    table: &str,
    filter: &str,
    params: &[rusqlite::types::Value],
) -> anyhow::Result<Sum> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT * FROM {} WHERE {filter}",
        quote_ident(table)
    ))?;
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut sum = Sum { rows: 0, hash: 0 };
    while let Some(row) = rows.next()? {
        let mut h = std::hash::DefaultHasher::new();
        for i in 0..n {
            use rusqlite::types::ValueRef;
            match row.get_ref(i)? {
                ValueRef::Null => h.write_u8(0),
                ValueRef::Integer(x) => {
                    h.write_u8(1);
                    h.write_i64(x);
                }
                ValueRef::Real(x) => {
                    h.write_u8(2);
                    h.write_u64(x.to_bits());
                }
                ValueRef::Text(t) => {
                    h.write_u8(3);
                    h.write_usize(t.len());
                    h.write(t);
                }
                ValueRef::Blob(b) => {
                    h.write_u8(4);
                    h.write_usize(b.len());
                    h.write(b);
                }
            }
        }
        sum.rows += 1;
        sum.hash ^= h.finish() as i64;
    }
    Ok(sum)
}

/// Reads one table's two sides by range.
pub(super) struct Sides<'a> {
    pub source_client: &'a mut postgres::Client,
    pub source: &'a Table,
    pub target: &'a mut Target,
    pub side: &'a TargetSide,
    source_hash: &'static str,
    target_hash: &'static str,
}

impl<'a> Sides<'a> {
    pub fn new(
        source_client: &'a mut postgres::Client,
        source: &'a Table,
        target: &'a mut Target,
        side: &'a TargetSide,
    ) -> anyhow::Result<Self> {
        let source_hash = pg_hash(source_client)?;
        let target_hash = match (&mut *target, side) {
            (Target::Postgres { client, .. }, TargetSide::Postgres { .. }) => pg_hash(client)?,
            _ => "",
        };
        Ok(Sides {
            source_client,
            source,
            target,
            side,
            source_hash,
            target_hash,
        })
    }

    fn source_sum(&mut self, r: &RangeState) -> anyhow::Result<Sum> {
        let filter = pg_filter(self.source, r.after.as_deref(), r.until.as_deref());
        pg_sum(self.source_client, self.source, self.source_hash, &filter)
    }

    fn target_sum(&mut self, r: &RangeState) -> anyhow::Result<Sum> {
        target_sum(self.target, self.side, self.target_hash, r)
    }

    /// Both sides' sums of every range, the two databases working at once.
    fn sums(&mut self, ranges: &[RangeState]) -> anyhow::Result<Vec<(Sum, Sum)>> {
        let (source_client, source, source_hash) =
            (&mut *self.source_client, self.source, self.source_hash);
        let (target, side, target_hash) = (&mut *self.target, self.side, self.target_hash);
        std::thread::scope(|s| {
            let theirs = s.spawn(move || target_sums(target, side, target_hash, ranges));
            let ours = ranges
                .iter()
                .map(|r| {
                    let filter = pg_filter(source, r.after.as_deref(), r.until.as_deref());
                    pg_sum(source_client, source, source_hash, &filter)
                })
                .collect::<anyhow::Result<Vec<Sum>>>();
            let theirs = theirs
                .join()
                .map_err(|_| anyhow::anyhow!("verify: the target's checksum thread panicked"))?;
            Ok(ours?.into_iter().zip(theirs?).collect())
        })
    }

    /// Cuts the source keys after `after` up to `until` into ranges of
    /// [`RANGE_ROWS`] keys (reads the keys only, in key order).
    fn cut(
        &mut self,
        after: Option<&[String]>,
        until: Option<&[String]>,
    ) -> anyhow::Result<Vec<RangeState>> {
        use std::io::BufRead as _;
        let source = self.source;
        let texts = key_columns(source);
        let sql = format!(
            "COPY (SELECT {texts} FROM {} WHERE {} ORDER BY {texts}) TO STDOUT",
            source.name.quoted(),
            pg_filter(source, after, until)
        );
        let mut reader = std::io::BufReader::new(self.source_client.copy_out(sql.as_str())?);
        let mut cuts: Vec<Vec<String>> = Vec::new();
        let mut line = Vec::new();
        let mut fields = Vec::new();
        let mut n = 0usize;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            n += 1;
            if n.is_multiple_of(RANGE_ROWS) {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                pg::copy_text::parse_row(&line, &mut fields).map_err(anyhow::Error::msg)?;
                cuts.push(
                    fields
                        .iter()
                        .map(|f| f.clone().unwrap_or_default())
                        .collect(),
                );
            }
        }
        // The last cut at the very last key would leave an empty range.
        if n.is_multiple_of(RANGE_ROWS) {
            cuts.pop();
        }
        let mut ranges = Vec::with_capacity(cuts.len() + 1);
        let mut lower = after.map(<[String]>::to_vec);
        for cut in cuts {
            ranges.push(RangeState {
                after: lower.take(),
                until: Some(cut.clone()),
                settled: None,
            });
            lower = Some(cut);
        }
        ranges.push(RangeState {
            after: lower,
            until: until.map(<[String]>::to_vec),
            settled: None,
        });
        Ok(ranges)
    }
}

/// The target's sums of `ranges`. A SQLite file is hashed here, in
/// Rust: the second half of the ranges on a second connection, on a
/// thread of its own (PostgreSQL's side costs far less).
fn target_sums(
    target: &mut Target,
    side: &TargetSide,
    hash: &str,
    ranges: &[RangeState],
) -> anyhow::Result<Vec<Sum>> {
    let second = match &*target {
        Target::Sqlite(conn) if ranges.len() > 1 => conn.path().and_then(|p| {
            rusqlite::Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()
        }),
        _ => None,
    };
    let Some(mut second) = second.map(Target::Sqlite) else {
        return ranges
            .iter()
            .map(|r| target_sum(target, side, hash, r))
            .collect();
    };
    let (first_half, second_half) = ranges.split_at(ranges.len() / 2);
    std::thread::scope(|s| {
        let later = s.spawn(move || {
            second_half
                .iter()
                .map(|r| target_sum(&mut second, side, hash, r))
                .collect::<anyhow::Result<Vec<Sum>>>()
        });
        let mut sums = first_half
            .iter()
            .map(|r| target_sum(target, side, hash, r))
            .collect::<anyhow::Result<Vec<Sum>>>()?;
        let later = later
            .join()
            .map_err(|_| anyhow::anyhow!("verify: a checksum thread panicked"))??;
        sums.extend(later);
        Ok(sums)
    })
}

fn target_sum(
    target: &mut Target,
    side: &TargetSide,
    hash: &str,
    r: &RangeState,
) -> anyhow::Result<Sum> {
    match (target, side.filter(r.after.as_deref(), r.until.as_deref())) {
        (Target::Postgres { client, .. }, TargetFilter::Postgres(filter)) => {
            let TargetSide::Postgres { table } = side else {
                anyhow::bail!("verify: a PostgreSQL target read as another");
            };
            pg_sum(client, table, hash, &filter)
        }
        (Target::Sqlite(conn), TargetFilter::Sqlite(filter, params)) => {
            sqlite_sum(conn, &side.table_name(), &filter, &params)
        }
        _ => anyhow::bail!("verify: the target is not the database its ranges were planned for"),
    }
}

/// What one table needs besides its two sides.
pub(super) struct Job<'a> {
    pub slots: &'a mut [TransformSlot],
    pub batch_size: usize,
    /// Keys the sink refused (the dead-letter file has them).
    pub refused: Option<&'a HashSet<Key>>,
    pub samples: usize,
    pub keep_keys: bool,
    pub fingerprint: String,
    /// The target's key columns.
    pub key: Vec<String>,
}

/// Why a table cannot be compared by ranges after all (found while
/// comparing): it is compared in full instead.
#[derive(Debug)]
pub(super) struct Abandon(pub String);

/// How a range's comparison went.
struct Checked {
    report: TableReport,
    sums: Sums,
    /// Rows the sink refused (the dead-letter file): a range with any is
    /// not recorded as identical (the file may change without the data).
    refused: u64,
}

/// Compares one table by ranges; `state` is its baseline, updated.
/// `save` writes the baseline (called every few seconds).
pub(super) fn verify_table(
    sides: &mut Sides<'_>,
    job: &mut Job<'_>,
    state: &mut TableState,
    save: &mut dyn FnMut(&TableState),
) -> anyhow::Result<Result<TableReport, Abandon>> {
    let table_name = sides.side.table_name();
    if state.fingerprint != job.fingerprint || state.target != table_name {
        for r in &mut state.ranges {
            r.settled = None;
        }
        state.fingerprint = job.fingerprint.clone();
        state.target = table_name.clone();
    }
    if state.ranges.is_empty() {
        let t0 = Instant::now();
        state.ranges = sides.cut(None, None)?;
        tracing::info!(table = %table_name, ranges = state.ranges.len(), secs = t0.elapsed().as_secs_f64(), "verify: cut into key ranges");
    }
    let t0 = Instant::now();
    let mut sums = sides.sums(&state.ranges)?;
    // Ranges grown past the bound (rows appended at the end of the key
    // space, mostly) are cut again; their pieces are compared.
    let mut i = 0;
    while i < state.ranges.len() {
        if sums[i].0.rows > MAX_RANGE_ROWS {
            let r = state.ranges[i].clone();
            let pieces = sides.cut(r.after.as_deref(), r.until.as_deref())?;
            let piece_sums = sides.sums(&pieces)?;
            let n = pieces.len();
            state.ranges.splice(i..=i, pieces);
            sums.splice(i..=i, piece_sums);
            i += n;
        } else {
            i += 1;
        }
    }
    tracing::info!(table = %table_name, ranges = state.ranges.len(), secs = t0.elapsed().as_secs_f64(), "verify: checksums of both sides");

    let mut report = TableReport {
        table: table_name.clone(),
        method: "ranges".into(),
        ranges: state.ranges.len() as u64,
        ..Default::default()
    };
    let mut total = Sums::default();
    let mut last_progress = Instant::now();
    let count = state.ranges.len();
    for (i, (source_sum, target_sum)) in sums.into_iter().enumerate() {
        let unchanged = state.ranges[i]
            .settled
            .as_ref()
            .filter(|s| s.source == source_sum && s.target == target_sum);
        if let Some(s) = unchanged {
            add_counts(&mut report, &mut total, &s.counts);
            continue;
        }
        let range = state.ranges[i].clone();
        let checked = match check_range(sides, job, &range, &mut report)? {
            Ok(c) => c,
            Err(abandon) => {
                save(state);
                return Ok(Err(abandon));
            }
        };
        report.ranges_rechecked += 1;
        report.rows_rechecked += checked.report.source_rows;
        // Recorded only if neither side moved while it was compared.
        let stable = checked.report.identical()
            && checked.refused == 0
            && sides.source_sum(&range)? == source_sum
            && sides.target_sum(&range)? == target_sum;
        let counts = Counts {
            source_rows: checked.report.source_rows,
            expected: checked.report.expected,
            target_rows: checked.report.target_rows,
            matching: checked.report.matching,
            dead_lettered: checked.report.dead_lettered,
            dropped: checked.report.dropped,
            expected_digest: hex(&checked.sums.expected.to_be_bytes()),
            target_digest: hex(&checked.sums.target.to_be_bytes()),
        };
        merge(&mut report, &mut total, checked, job);
        state.ranges[i].settled = stable.then_some(Settled {
            source: source_sum,
            target: target_sum,
            counts,
        });
        if last_progress.elapsed() >= PROGRESS_EVERY {
            save(state);
            tracing::info!(table = %table_name, range = i + 1, of = count, rechecked = report.ranges_rechecked, "verify: comparing ranges");
            last_progress = Instant::now();
        }
    }
    save(state);
    report.expected_checksum = hex(&total.expected.to_be_bytes());
    report.target_checksum = hex(&total.target.to_be_bytes());
    if report.missing > 0 || report.extra > 0 {
        report.target_checksum = format!("{}(partial)", &report.target_checksum[..16]);
    }
    Ok(Ok(report))
}

fn parse_u128(hex: &str) -> u128 {
    u128::from_str_radix(hex, 16).unwrap_or(0)
}

fn add_counts(r: &mut TableReport, total: &mut Sums, c: &Counts) {
    r.source_rows += c.source_rows;
    r.expected += c.expected;
    r.target_rows += c.target_rows;
    r.matching += c.matching;
    r.dead_lettered += c.dead_lettered;
    r.dropped += c.dropped;
    total.expected = total.expected.wrapping_add(parse_u128(&c.expected_digest));
    total.target = total.target.wrapping_add(parse_u128(&c.target_digest));
}

fn merge(r: &mut TableReport, total: &mut Sums, c: Checked, job: &Job<'_>) {
    let d = c.report;
    r.source_rows += d.source_rows;
    r.expected += d.expected;
    r.target_rows += d.target_rows;
    r.matching += d.matching;
    r.dead_lettered += d.dead_lettered;
    r.dropped += d.dropped;
    r.missing += d.missing;
    r.extra += d.extra;
    r.different += d.different;
    for s in d.samples {
        if r.samples.len() < job.samples {
            r.samples.push(s);
        }
    }
    if job.keep_keys {
        r.differing_keys.extend(d.differing_keys);
        r.extra_keys.extend(d.extra_keys);
    }
    total.expected = total.expected.wrapping_add(c.sums.expected);
    total.target = total.target.wrapping_add(c.sums.target);
}

/// Compares one range row by row: its source rows through the plugins,
/// and its target rows (read at the same time, on another thread).
fn check_range(
    sides: &mut Sides<'_>,
    job: &mut Job<'_>,
    range: &RangeState,
    so_far: &mut TableReport,
) -> anyhow::Result<Result<Checked, Abandon>> {
    let target_table = sides.side.table_name();
    let filter = sides
        .side
        .filter(range.after.as_deref(), range.until.as_deref());
    let key = job.key.clone();
    let target = &mut *sides.target;
    let (source_client, source) = (&mut *sides.source_client, sides.source);
    let (ours, theirs) = std::thread::scope(|s| {
        let theirs = s.spawn(move || {
            let mut actual: HashMap<Key, Row> = HashMap::new();
            let n = target.rows_where(&target_table, &key, Some(&filter), &mut |k, row| {
                actual.insert(k, row);
                Ok(())
            })?;
            anyhow::Ok((n, actual))
        });
        let ours = expected_rows(source_client, source, range, job);
        let theirs = theirs
            .join()
            .map_err(|_| anyhow::anyhow!("verify: the target's reading thread panicked"));
        (ours, theirs)
    });
    let (mut report, want) = match ours? {
        Ok(x) => x,
        Err(abandon) => return Ok(Err(abandon)),
    };
    let (target_rows, actual) = theirs??;
    report.target_rows = target_rows;
    let plugin_rejects = report.dead_lettered;
    let mut sums = Sums::default();
    let samples = job.samples.saturating_sub(so_far.samples.len());
    compare(
        &mut report,
        &mut sums,
        want,
        actual,
        job.refused,
        (samples, job.keep_keys),
    );
    let refused = report.dead_lettered - plugin_rejects;
    Ok(Ok(Checked {
        report,
        sums,
        refused,
    }))
}

/// The rows the target should hold in `range`: the source's rows through
/// the plugins, by target key, with the counts of source rows, rejects and
/// drops.
#[allow(clippy::type_complexity)]
fn expected_rows(
    source_client: &mut postgres::Client,
    source: &Table,
    range: &RangeState,
    job: &mut Job<'_>,
) -> anyhow::Result<Result<(TableReport, HashMap<Key, Row>), Abandon>> {
    let source_key: Vec<String> = source
        .key
        .iter()
        .map(|&i| source.columns[i].name.clone())
        .collect();
    let filter = pg_filter(source, range.after.as_deref(), range.until.as_deref());
    let mut report = TableReport::default();
    let mut want: HashMap<Key, Row> = HashMap::new();
    let mut pending: Vec<Record<'static>> = Vec::with_capacity(job.batch_size);
    let mut abandon: Option<String> = None;
    let mut run = |pending: &mut Vec<Record<'static>>,
                   want: &mut HashMap<Key, Row>,
                   report: &mut TableReport,
                   abandon: &mut Option<String>|
     -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let (batch, p) = crate::pipeline::run_records(job.slots, pending);
        let data = p.data(&batch);
        for (s, &origin) in p.spans.iter().zip(&p.origins) {
            let rec = Record::decode(&data[s.start as usize..s.end as usize])?;
            let Some(from) = pending.get(origin as usize) else {
                continue;
            };
            if rec.stream != from.stream {
                *abandon = Some(format!(
                    "the plugins route rows of `{}` to `{}`",
                    from.stream, rec.stream
                ));
                return Ok(());
            }
            let key: Key = job
                .key
                .iter()
                .map(|k| rec.get(k).and_then(values::canonical))
                .collect();
            let source_key_values: Key = source_key
                .iter()
                .map(|k| from.get(k).and_then(values::canonical))
                .collect();
            if key != source_key_values {
                *abandon = Some(format!(
                    "the plugins change keys (source key {} gives target key {})",
                    super::show_key(&source_key_values),
                    super::show_key(&key)
                ));
                return Ok(());
            }
            let row: Row = rec
                .fields
                .iter()
                .map(|(n, v)| (n.to_string(), values::canonical(v)))
                .collect();
            if want.insert(key, row).is_some() {
                *abandon = Some("the plugins emit several rows of one key".into());
                return Ok(());
            }
        }
        report.source_rows += pending.len() as u64;
        report.dead_lettered += p.dead.len() as u64;
        report.dropped += p.dropped;
        pending.clear();
        Ok(())
    };
    // `Err` from the callback only stops the read; why is kept here.
    let mut failed: Option<anyhow::Error> = None;
    let read = crate::sources::postgres::snapshot::read_where(
        source_client,
        source,
        &filter,
        &mut |rec| {
            pending.push(rec.into_owned());
            if pending.len() >= job.batch_size {
                if let Err(e) = run(&mut pending, &mut want, &mut report, &mut abandon) {
                    failed = Some(e);
                }
                if failed.is_some() || abandon.is_some() {
                    return Err("stopped".into());
                }
            }
            Ok(())
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }
    if abandon.is_none() {
        read.map_err(anyhow::Error::msg)?;
        run(&mut pending, &mut want, &mut report, &mut abandon)?;
    }
    if let Some(why) = abandon {
        return Ok(Err(Abandon(why)));
    }
    Ok(Ok((report, want)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pg::columns::Column;

    fn column(name: &str, oid: u32, ty: &str) -> Column {
        Column {
            name: name.into(),
            type_oid: oid,
            type_name: ty.into(),
            portable_type: ty.into(),
            cast_type: format!("pg_catalog.{ty}"),
        }
    }

    #[test]
    fn range_conditions_quote_bounds_and_cast_them_to_the_columns_types() {
        let t = Table {
            name: TableName::parse("crm.orders").unwrap(),
            columns: vec![column("region", 25, "text"), column("id", 20, "int8")],
            key: vec![0, 1],
        };
        assert_eq!(pg_filter(&t, None, None), "TRUE");
        assert_eq!(
            pg_filter(
                &t,
                Some(&["o'hare".into(), "5".into()]),
                Some(&["zz".into(), "1".into()])
            ),
            "(\"region\", \"id\") > ('o''hare'::pg_catalog.text, '5'::pg_catalog.int8) AND (\"region\", \"id\") <= ('zz'::pg_catalog.text, '1'::pg_catalog.int8)"
        );
        let side = TargetSide::Sqlite {
            table: "orders".into(),
            key: vec!["region".into(), "id".into()],
            ints: vec![false, true],
        };
        let TargetFilter::Sqlite(sql, params) = side.filter(Some(&["a".into(), "5".into()]), None)
        else {
            panic!("a SQLite filter");
        };
        assert_eq!(sql, "(\"region\", \"id\") > (?1, ?2)");
        assert_eq!(
            params,
            vec![
                rusqlite::types::Value::Text("a".into()),
                rusqlite::types::Value::Integer(5)
            ]
        );
    }

    #[test]
    fn only_byte_ordered_collations_count_as_bytes() {
        for c in ["C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"] {
            assert!(byte_order(c), "{c}");
        }
        for c in ["en_US.UTF-8", "", "icu:und", "default"] {
            assert!(!byte_order(c), "{c}");
        }
        assert_eq!(key_kind(20), Some(KeyKind::Int));
        assert_eq!(key_kind(1700), None, "numeric keys are compared in full");
    }

    #[test]
    fn sqlite_sums_change_with_any_value_and_not_with_row_order() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, r REAL);
             INSERT INTO t VALUES (1, 'a', 1.5), (2, NULL, 2.0), (3, 'c', NULL);",
        )
        .unwrap();
        let all = sqlite_sum(&conn, "t", "1", &[]).unwrap();
        assert_eq!(all.rows, 3);
        let upper =
            sqlite_sum(&conn, "t", "id > ?1", &[rusqlite::types::Value::Integer(1)]).unwrap();
        assert_eq!(upper.rows, 2);
        conn.execute("UPDATE t SET v = 'b' WHERE id = 2", [])
            .unwrap();
        assert_ne!(sqlite_sum(&conn, "t", "1", &[]).unwrap(), all);
        conn.execute("UPDATE t SET v = NULL WHERE id = 2", [])
            .unwrap();
        assert_eq!(sqlite_sum(&conn, "t", "1", &[]).unwrap(), all);
        // The same rows inserted in another order.
        let other = rusqlite::Connection::open_in_memory().unwrap();
        other
            .execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, r REAL);
                 INSERT INTO t VALUES (3, 'c', NULL), (1, 'a', 1.5), (2, NULL, 2.0);",
            )
            .unwrap();
        assert_eq!(sqlite_sum(&other, "t", "1", &[]).unwrap(), all);
        assert!(sqlite_key_indexed(&conn, "t", &["id".into()]).unwrap());
        assert!(!sqlite_key_indexed(&conn, "t", &["v".into()]).unwrap());
    }
}
