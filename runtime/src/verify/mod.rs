//! `sluice verify`: proves that the target matches the source.
//!
//! Source rows are run through the pipeline's own plugins, exactly as a
//! sync would, giving the rows the target should hold. Those are compared
//! with the target table by table, by key and by a checksum of each row's
//! canonical values ([`crate::pg::values::canonical`]: `5` and `5.00`, a
//! timestamp and its RFC 3339 text compare equal). Rows the plugins reject
//! or drop are expected absent; rows the dead-letter file holds as refused
//! by the sink are accounted as dead-lettered, not missing.
//!
//! Two ways, with the same figures:
//! - by key ranges ([`ranges`]), where a table allows: checksums the
//!   databases compute per range of primary-key values, compared with those
//!   the ranges had when last found identical ([`baseline`]); only changed
//!   ranges are read row by row. The first verify of a table reads all.
//! - in full (the other tables, and `--full`): every source row, all tables
//!   in one consistent snapshot, and every target row. Memory stays
//!   bounded whatever the size of the tables: both sides are written to
//!   temporary files in buckets by a hash of the key ([`spill`]), then
//!   compared a bucket at a time (a bucket too large to hold is split
//!   again). Key order on the two sides need not agree (plugins may change
//!   keys, collations differ between databases).
//!
//! The checksums in the report are sums of per-row digests, so they depend
//! on no order, and ranges add up to the same figure as the full
//! comparison.
//!
//! The source keeps changing during a live sync: run `verify` once the
//! target has caught up (`sluice run --until-caught-up`), or use `--follow`
//! to tell differences that persist from changes in flight.

mod baseline;
pub mod follow;
mod ranges;
pub mod repair;
mod spill;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sluice_codec::{Record, Value};

use crate::config::Pipeline;
use crate::pg::{self, TableName, values};
use crate::pipeline;
use crate::sinks::SinkConfig;
use crate::sources::SourceConfig;
use crate::sql::quote_ident;

/// What `verify` found for one target table.
#[derive(Debug, Default, Serialize)]
pub struct TableReport {
    /// The target table.
    pub table: String,
    /// Source rows read.
    pub source_rows: u64,
    /// Rows the target should hold (after the plugins).
    pub expected: u64,
    /// Rows the target holds.
    pub target_rows: u64,
    /// Rows equal on both sides.
    pub matching: u64,
    /// Source rows the plugins reject, or the sink refused (the
    /// dead-letter file has them): expected absent.
    pub dead_lettered: u64,
    /// Source rows the plugins drop on purpose.
    pub dropped: u64,
    /// Expected rows the target lacks.
    pub missing: u64,
    /// Target rows no source row gives.
    pub extra: u64,
    /// Rows present on both sides whose values differ.
    pub different: u64,
    /// Checksum over the expected rows (key order).
    pub expected_checksum: String,
    /// Checksum over the target rows (same columns, key order).
    pub target_checksum: String,
    /// How it was compared: `ranges` (by key ranges, re-checking only
    /// the ranges whose checksums changed) or `full` (every row).
    pub method: String,
    /// Why a table was compared in full when ranges could not be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_because: Option<String>,
    /// Key ranges (by ranges).
    pub ranges: u64,
    /// Ranges compared row by row this time (by ranges).
    pub ranges_rechecked: u64,
    /// Source rows read and run through the plugins for that.
    pub rows_rechecked: u64,
    /// Some of the problems, for a person to look at.
    pub samples: Vec<String>,
    /// The keys of the missing and different rows (kept for `--repair`).
    #[serde(skip)]
    pub differing_keys: Vec<Key>,
    /// The keys of the extra rows (kept for `--repair`).
    #[serde(skip)]
    pub extra_keys: Vec<Key>,
}

impl TableReport {
    /// True when nothing is missing, extra or different.
    pub fn identical(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.different == 0
    }
}

/// The whole report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The pipeline.
    pub pipeline: String,
    /// Per target table.
    pub tables: Vec<TableReport>,
}

impl Report {
    /// True when every table is identical.
    pub fn identical(&self) -> bool {
        self.tables.iter().all(TableReport::identical)
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            out.push_str(&format!(
                "{}  {}\n  source {}  expected {}  target {}  matching {}\n  dead-lettered {}  dropped {}  missing {}  extra {}  different {}\n  checksum expected {}  target {}\n",
                if t.identical() { "IDENTICAL" } else { "DIFFERENT" },
                t.table,
                t.source_rows,
                t.expected,
                t.target_rows,
                t.matching,
                t.dead_lettered,
                t.dropped,
                t.missing,
                t.extra,
                t.different,
                &t.expected_checksum[..16.min(t.expected_checksum.len())],
                &t.target_checksum[..16.min(t.target_checksum.len())],
            ));
            if t.method == "ranges" {
                out.push_str(&format!(
                    "  by key ranges: {} ranges, {} compared row by row ({} source rows), the rest unchanged since found identical\n",
                    t.ranges, t.ranges_rechecked, t.rows_rechecked
                ));
            } else if let Some(why) = &t.full_because {
                out.push_str(&format!("  every row compared: {why}\n"));
            }
            for s in &t.samples {
                out.push_str(&format!("    {s}\n"));
            }
        }
        out
    }
}

use spill::{Key, Row, Spill};

/// Expected rows of one target table.
struct Expected {
    rows: Spill,
    source_rows: u64,
    dead_lettered: u64,
    dropped: u64,
}

impl Expected {
    fn new(dir: &std::path::Path, table: &str) -> std::io::Result<Self> {
        Ok(Expected {
            rows: Spill::new(dir, &format!("expected-{}", spill::file_safe(table)))?,
            source_rows: 0,
            dead_lettered: 0,
            dropped: 0,
        })
    }
}

/// The expected rows of `table`, created on first use.
fn expected_for<'e>(
    expected: &'e mut BTreeMap<String, Expected>,
    dir: &std::path::Path,
    table: String,
) -> anyhow::Result<&'e mut Expected> {
    use std::collections::btree_map::Entry;
    Ok(match expected.entry(table) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(v) => {
            let e = Expected::new(dir, v.key())?;
            v.insert(e)
        }
    })
}

/// How `verify` compares.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Problems to show per table.
    pub samples: usize,
    /// Keep the key of every row that differs (what `--repair` needs: one
    /// key per differing row in memory).
    pub keep_keys: bool,
    /// Compare every row of every table, in one snapshot of the source,
    /// without key ranges (and without what earlier verifies found).
    pub full: bool,
}

/// Compares the target of `pipeline` with its source.
pub fn verify(pipeline: Pipeline, samples: usize) -> anyhow::Result<Report> {
    verify_with(
        pipeline,
        &Options {
            samples,
            ..Default::default()
        },
    )
}

/// [`verify`], keeping the keys of every row that differs when `keep_keys`.
pub fn verify_keeping_keys(
    pipeline: Pipeline,
    samples: usize,
    keep_keys: bool,
) -> anyhow::Result<Report> {
    verify_with(
        pipeline,
        &Options {
            samples,
            keep_keys,
            full: false,
        },
    )
}

/// Compares the target of `pipeline` with its source: by key ranges where
/// it can ([`ranges`]), every row of the other tables.
pub fn verify_with(pipeline: Pipeline, options: &Options) -> anyhow::Result<Report> {
    #[cfg(feature = "mysql")]
    if let SourceConfig::Mysql(source) = &pipeline.config.source {
        let source = source.clone();
        return verify_mysql(pipeline, &source, options);
    }
    let SourceConfig::Postgres(source) = pipeline.config.source.clone() else {
        anyhow::bail!(
            "`verify` compares a PostgreSQL or MySQL source with its target; this pipeline reads `{}`",
            pipeline.config.source.kind()
        );
    };
    let sink = pipeline.config.sink.clone();
    let mut target = Target::open(&sink)?;
    let refused = sink_refused_keys(&pipeline, &target);
    let mut source_client =
        pg::connect(&source.url, "sluice-verify").map_err(anyhow::Error::msg)?;
    let mut described = Vec::with_capacity(source.tables.len());
    for entry in &source.tables {
        let name = TableName::parse(entry).map_err(anyhow::Error::msg)?;
        let table = crate::sources::postgres::catalog::describe_table(&mut source_client, &name)
            .map_err(anyhow::Error::msg)?;
        let target_table = target.table_for_stream(&table.name.stream(), &sink);
        let fingerprint = baseline::fingerprint(&pipeline, &table);
        described.push((entry.clone(), table, target_table, fingerprint));
    }
    let baseline_path = baseline::Baseline::path_of(&pipeline);
    let name = pipeline.name.clone();
    let batch_size = pipeline.config.runtime.batch_size;
    let mut prepared = pipeline::prepare(pipeline)?;
    let mut slots = prepared.take_slots();
    let mut baseline = baseline::Baseline::load(&baseline_path);

    let mut report = Report {
        pipeline: name,
        tables: Vec::new(),
    };
    let mut in_full: Vec<String> = Vec::new();
    let mut full_because: HashMap<String, String> = HashMap::new();
    for (entry, table, target_table, fingerprint) in &described {
        let stream = table.name.stream();
        let feeding = described.iter().filter(|d| d.2 == *target_table).count();
        if options.full {
            in_full.push(entry.clone());
            continue;
        }
        let plan = if feeding > 1 {
            Err(format!("{feeding} source tables feed it"))
        } else {
            let key = target.table_key(target_table, &sink)?;
            ranges::plan(&mut source_client, table, &mut target, target_table, &key)?
                .map(|side| (side, key))
        };
        let (side, key) = match plan {
            Ok(p) => p,
            Err(why) => {
                tracing::info!(table = %target_table, why = %why, "verify: comparing every row");
                baseline.tables.remove(&stream);
                in_full.push(entry.clone());
                full_because.insert(target_table.clone(), why);
                continue;
            }
        };
        let mut state = baseline.tables.remove(&stream).unwrap_or_default();
        let mut sides = ranges::Sides::new(&mut source_client, table, &mut target, &side)?;
        let mut job = ranges::Job {
            slots: &mut slots,
            batch_size,
            refused: refused.get(target_table),
            samples: options.samples,
            keep_keys: options.keep_keys,
            fingerprint: fingerprint.clone(),
            key,
        };
        let mut save = |s: &baseline::TableState| {
            baseline.tables.insert(stream.clone(), s.clone());
            if let Err(e) = baseline.save() {
                tracing::warn!(path = %baseline_path.display(), error = %e, "verify: cannot keep what this verify found identical; the next one compares every range again");
            }
        };
        match ranges::verify_table(&mut sides, &mut job, &mut state, &mut save)? {
            Ok(r) => report.tables.push(r),
            Err(ranges::Abandon(why)) => {
                tracing::info!(table = %target_table, why = %why, "verify: comparing every row");
                baseline.tables.remove(&stream);
                in_full.push(entry.clone());
                full_because.insert(target_table.clone(), why);
            }
        }
    }
    if let Err(e) = baseline.save() {
        tracing::warn!(path = %baseline_path.display(), error = %e, "verify: cannot keep what this verify found identical");
    }
    drop(source_client);
    if !in_full.is_empty() {
        let mut config = source.clone();
        config.tables = in_full;
        let full = Full {
            sink: &sink,
            target: &mut target,
            slots: &mut slots,
            batch_size,
            refused: &refused,
        };
        let read = |each: &mut dyn FnMut(Record<'_>) -> Result<(), String>| {
            crate::sources::postgres::snapshot::read_tables(&config, &mut |_, rec| each(rec))
                .map(|tables| tables.iter().map(|t| t.name.stream()).collect())
        };
        for mut t in full.compare(read, options)? {
            t.full_because = full_because.remove(&t.table);
            report.tables.push(t);
        }
    }
    report.tables.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(report)
}

/// Compares the target with a MySQL source: every row, in one consistent
/// read of the source (key ranges need checksums on both sides, which are
/// built for PostgreSQL sources only).
#[cfg(feature = "mysql")]
fn verify_mysql(
    pipeline: Pipeline,
    source: &crate::sources::mysql::MysqlSourceConfig,
    options: &Options,
) -> anyhow::Result<Report> {
    let sink = pipeline.config.sink.clone();
    let mut target = Target::open(&sink)?;
    let refused = sink_refused_keys(&pipeline, &target);
    let name = pipeline.name.clone();
    let batch_size = pipeline.config.runtime.batch_size;
    let mut prepared = pipeline::prepare(pipeline)?;
    let mut slots = prepared.take_slots();
    let full = Full {
        sink: &sink,
        target: &mut target,
        slots: &mut slots,
        batch_size,
        refused: &refused,
    };
    let mut left_out = 0u64;
    let read = |each: &mut dyn FnMut(Record<'_>) -> Result<(), String>| {
        crate::sources::mysql::read_all(source, each).map(|(streams, n)| {
            left_out = n;
            streams
        })
    };
    let mut tables = full.compare(read, options)?;
    if left_out > 0 {
        tracing::warn!(
            rows = left_out,
            "verify: rows the source sends to the dead letters (zero dates, undecodable text) are not compared"
        );
    }
    for t in &mut tables {
        t.full_because =
            Some("the source is MySQL (key ranges are built for PostgreSQL sources)".into());
    }
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(Report {
        pipeline: name,
        tables,
    })
}

/// Every row of some tables compared: what the tables that cannot be
/// compared by ranges get.
struct Full<'a> {
    sink: &'a SinkConfig,
    target: &'a mut Target,
    slots: &'a mut [crate::plugin::TransformSlot],
    batch_size: usize,
    refused: &'a HashMap<String, HashSet<Key>>,
}

impl Full<'_> {
    /// `read` hands every source row to its argument, in one consistent
    /// read, and returns the streams it read (tables with no rows too).
    fn compare(
        self,
        read: impl FnOnce(
            &mut dyn FnMut(Record<'_>) -> Result<(), String>,
        ) -> Result<Vec<String>, String>,
        options: &Options,
    ) -> anyhow::Result<Vec<TableReport>> {
        let Full {
            sink,
            target,
            slots,
            batch_size,
            refused,
        } = self;
        let spill_dir = tempfile::Builder::new().prefix("sluice-verify").tempdir()?;
        let dir = spill_dir.path();

        // The source through the plugins, batch by batch.
        let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
        let mut keys: HashMap<String, Vec<String>> = HashMap::new();
        let mut pending: Vec<Record<'static>> = Vec::with_capacity(batch_size);
        let mut run_batch = |pending: &mut Vec<Record<'static>>,
                             expected: &mut BTreeMap<String, Expected>,
                             target: &mut Target|
         -> anyhow::Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            let (batch, p) = pipeline::run_records(slots, pending);
            let data = p.data(&batch);
            for s in &p.spans {
                let rec = Record::decode(&data[s.start as usize..s.end as usize])?;
                let table = target.table_for(&rec, sink);
                let key_cols = match keys.get(&table) {
                    Some(k) => k.clone(),
                    None => {
                        let k = target.key_of(&table, &rec, sink)?;
                        keys.insert(table.clone(), k.clone());
                        k
                    }
                };
                let key: Vec<Option<String>> = key_cols
                    .iter()
                    .map(|k| rec.get(k).and_then(values::canonical))
                    .collect();
                let row: BTreeMap<String, Option<String>> = rec
                    .fields
                    .iter()
                    .map(|(n, v)| (n.to_string(), values::canonical(v)))
                    .collect();
                expected_for(expected, dir, table)?.rows.push(&key, &row)?;
            }
            // A batch holds one source table: its rejects (dead letters) and
            // drops count there.
            if let Some(first) = pending.first() {
                let e = expected_for(expected, dir, target.table_for_stream(&first.stream, sink))?;
                e.source_rows += pending.len() as u64;
                e.dead_lettered += p.dead.len() as u64;
                e.dropped += p.dropped;
            }
            pending.clear();
            Ok(())
        };
        let mut current_stream = String::new();
        let streams = read(&mut |rec| {
            if rec.stream != current_stream.as_str() || pending.len() >= batch_size {
                run_batch(&mut pending, &mut expected, target).map_err(|e| e.to_string())?;
                current_stream = rec.stream.to_string();
            }
            pending.push(rec.into_owned());
            Ok(())
        })
        .map_err(anyhow::Error::msg)?;
        run_batch(&mut pending, &mut expected, target)?;
        // Tables with no rows at all still get a line.
        for stream in &streams {
            expected_for(&mut expected, dir, target.table_for_stream(stream, sink))?;
        }

        let mut out = Vec::new();
        for (table, exp) in expected {
            let key_cols = match keys.get(&table) {
                Some(k) => k.clone(),
                None => target.table_key(&table, sink)?,
            };
            let mut actual = Spill::new(dir, &format!("target-{}", spill::file_safe(&table)))?;
            let target_rows = target.rows(&table, &key_cols, &mut actual)?;
            let accounted = refused.get(&table);
            let mut r = TableReport {
                table: table.clone(),
                method: "full".into(),
                source_rows: exp.source_rows,
                target_rows,
                dead_lettered: exp.dead_lettered,
                dropped: exp.dropped,
                ..Default::default()
            };
            let mut sums = Sums::default();
            let pairs = exp.rows.finish()?.into_iter().zip(actual.finish()?);
            for (e, t) in pairs {
                spill::compare_bucket(e, t, 0, spill::IN_MEMORY_BYTES, &mut |want, got| {
                    compare(
                        &mut r,
                        &mut sums,
                        want,
                        got,
                        accounted,
                        (options.samples, options.keep_keys),
                    )
                })?;
            }
            r.expected_checksum = hex(&sums.expected.to_be_bytes());
            r.target_checksum = hex(&sums.target.to_be_bytes());
            if r.missing > 0 || r.extra > 0 {
                // The target checksum only covers rows both sides have.
                r.target_checksum = format!("{}(partial)", &r.target_checksum[..16]);
            }
            out.push(r);
        }
        Ok(out)
    }
}

/// Order-independent checksums: sums of per-row digests.
#[derive(Default)]
struct Sums {
    expected: u128,
    target: u128,
}

/// A row's digest: its key and its columns in name order, each value
/// length-prefixed (null told from every text), hashed.
fn digest(key: &Key, row: &BTreeMap<&String, &Option<String>>) -> u128 {
    fn value(h: &mut Sha256, v: Option<&str>) {
        match v {
            None => h.update([0u8]),
            Some(t) => {
                h.update([1u8]);
                h.update((t.len() as u64).to_le_bytes());
                h.update(t.as_bytes());
            }
        }
    }
    let mut h = Sha256::new();
    for k in key {
        value(&mut h, k.as_deref());
    }
    for (name, v) in row {
        value(&mut h, Some(name));
        value(&mut h, v.as_deref());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_be_bytes(b)
}

/// Compares one bucket: the expected rows (later rows of a key win) and the
/// target rows of the same keys' hashes.
fn compare(
    r: &mut TableReport,
    sums: &mut Sums,
    want: HashMap<Key, Row>,
    actual: HashMap<Key, Row>,
    refused: Option<&HashSet<Key>>,
    (samples, keep_keys): (usize, bool),
) {
    let sample = |r: &mut TableReport, s: String| {
        if r.samples.len() < samples {
            r.samples.push(s);
        }
    };
    r.expected += want.len() as u64;
    let mut exp_keys: Vec<&Key> = want.keys().collect();
    exp_keys.sort();
    for key in exp_keys {
        let want_row = &want[key];
        let all: BTreeMap<&String, &Option<String>> = want_row.iter().collect();
        sums.expected = sums.expected.wrapping_add(digest(key, &all));
        match actual.get(key) {
            None => {
                if refused.is_some_and(|s| s.contains(key)) {
                    r.dead_lettered += 1;
                    r.expected -= 1;
                } else {
                    r.missing += 1;
                    sample(r, format!("missing  key {}", show_key(key)));
                    if keep_keys {
                        r.differing_keys.push(key.clone());
                    }
                }
            }
            Some(got) => {
                // Only the columns the plugins produce are compared: the
                // target may have more (added by hand, dropped at the source).
                let got_same: BTreeMap<&String, &Option<String>> = want_row
                    .keys()
                    .map(|c| (c, got.get(c).unwrap_or(&None)))
                    .collect();
                sums.target = sums.target.wrapping_add(digest(key, &got_same));
                let diff: Vec<String> = want_row
                    .iter()
                    .filter(|(c, v)| got.get(*c).unwrap_or(&None) != *v)
                    .map(|(c, v)| {
                        format!(
                            "{c}: expected {} found {}",
                            show(v.as_deref()),
                            show(got.get(c).and_then(|x| x.as_deref()))
                        )
                    })
                    .collect();
                if diff.is_empty() {
                    r.matching += 1;
                } else {
                    r.different += 1;
                    if keep_keys {
                        r.differing_keys.push(key.clone());
                    }
                    sample(
                        r,
                        format!("different key {}: {}", show_key(key), diff.join("; ")),
                    );
                }
            }
        }
    }
    let mut extra: Vec<&Key> = actual.keys().filter(|k| !want.contains_key(*k)).collect();
    extra.sort();
    for key in extra {
        r.extra += 1;
        sample(r, format!("extra    key {}", show_key(key)));
        if keep_keys {
            r.extra_keys.push(key.clone());
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn show(v: Option<&str>) -> String {
    match v {
        None => "null".into(),
        Some(s) if s.len() > 60 => format!("{:?}…", &s[..s.floor_char_boundary(60)]),
        Some(s) => format!("{s:?}"),
    }
}

fn show_key(key: &[Option<String>]) -> String {
    key.iter()
        .map(|k| k.as_deref().unwrap_or("null").to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Keys of records the sink refused, from the dead-letter file (JSONL),
/// by table.
fn sink_refused_keys(
    pipeline: &Pipeline,
    target: &Target,
) -> HashMap<String, HashSet<Vec<Option<String>>>> {
    let mut out: HashMap<String, HashSet<Vec<Option<String>>>> = HashMap::new();
    let SinkConfig::Jsonl(dlq) = pipeline::dead_letter_config(pipeline) else {
        return out;
    };
    let Ok(text) = std::fs::read_to_string(&dlq.path) else {
        return out;
    };
    for line in text.lines() {
        let Ok(j) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = j.get("fields").unwrap_or(&j);
        if fields.get("stage").and_then(|s| s.as_str()) != Some("sink") {
            continue;
        }
        // `input` is what the sink was given (written when the plugins
        // changed the record; else `record` is): its stream and key fields.
        let Some(input) = fields
            .get("input")
            .filter(|i| !i.is_null())
            .or_else(|| fields.get("record"))
            .and_then(|v| match v {
                // Embedded as JSON, or (older dead letters) as JSON text.
                serde_json::Value::String(s) => serde_json::from_str(s).ok(),
                other => Some(other.clone()),
            })
        else {
            continue;
        };
        let stream = input
            .get("stream")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        // Named as the comparison names it (schema-qualified in PostgreSQL).
        let table = target.table_for_stream(stream, &pipeline.config.sink);
        let key_names: Vec<String> = input
            .get("headers")
            .and_then(|h| h.get(crate::conventions::KEY_HEADER))
            .and_then(|k| k.as_str())
            .map(crate::conventions::key_columns)
            .unwrap_or_default();
        let Some(f) = input.get("fields") else {
            continue;
        };
        let key = key_names
            .iter()
            .map(|k| {
                f.get(k)
                    .map(crate::value_json::json_to_value)
                    .and_then(|v| values::canonical(&v))
            })
            .collect();
        out.entry(table).or_default().insert(key);
    }
    out
}

/// The target database.
enum Target {
    Postgres {
        client: Box<postgres::Client>,
        schema: String,
    },
    Sqlite(rusqlite::Connection),
}

impl Target {
    fn open(sink: &SinkConfig) -> anyhow::Result<Self> {
        Ok(match sink {
            SinkConfig::Postgres(c) => Target::Postgres {
                client: Box::new(pg::connect(&c.url, "sluice-verify").map_err(anyhow::Error::msg)?),
                schema: c.schema.clone(),
            },
            SinkConfig::Sqlite(c) => Target::Sqlite(
                rusqlite::Connection::open_with_flags(
                    &c.path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .map_err(|e| anyhow::anyhow!("cannot open `{}`: {e}", c.path.display()))?,
            ),
            _ => {
                anyhow::bail!("`verify` reads PostgreSQL and SQLite targets; this sink is not one")
            }
        })
    }

    /// The target table of a record, as the sink names it.
    fn table_for(&self, rec: &Record<'_>, sink: &SinkConfig) -> String {
        self.table_for_stream(&rec.stream, sink)
    }

    /// The target table of records of `stream`.
    fn table_for_stream(&self, stream: &str, sink: &SinkConfig) -> String {
        let configured = match sink {
            SinkConfig::Postgres(c) => c.table.clone(),
            SinkConfig::Sqlite(c) => c.table.clone(),
            _ => None,
        };
        let name = configured.unwrap_or_else(|| stream.to_string());
        match self {
            Target::Postgres { schema, .. } if !name.contains('.') => format!("{schema}.{name}"),
            _ => name,
        }
    }

    fn key_of(
        &mut self,
        table: &str,
        rec: &Record<'_>,
        sink: &SinkConfig,
    ) -> anyhow::Result<Vec<String>> {
        let k = self.table_key(table, sink)?;
        if !k.is_empty() {
            return Ok(k);
        }
        Ok(crate::conventions::key_header(rec)
            .map(crate::conventions::key_columns)
            .unwrap_or_default())
    }

    /// The key columns: the sink's `key`, else the table's primary key.
    fn table_key(&mut self, table: &str, sink: &SinkConfig) -> anyhow::Result<Vec<String>> {
        let configured = match sink {
            SinkConfig::Postgres(c) => c.key.clone(),
            SinkConfig::Sqlite(c) => c.key.clone(),
            _ => Vec::new(),
        };
        if !configured.is_empty() {
            return Ok(configured);
        }
        Ok(match self {
            Target::Postgres { client, .. } => {
                let name = TableName::parse(table).map_err(anyhow::Error::msg)?;
                crate::pg::columns::read_columns(client, &name)?
                    .map(|(cols, key)| key.iter().map(|&i| cols[i].name.clone()).collect())
                    .unwrap_or_default()
            }
            Target::Sqlite(conn) => {
                let mut stmt =
                    conn.prepare(&format!("PRAGMA table_info({})", quote_ident(table)))?;
                let mut cols: Vec<(i64, String)> = stmt
                    .query_map([], |r| Ok((r.get::<_, i64>(5)?, r.get::<_, String>(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                cols.retain(|(pk, _)| *pk > 0);
                cols.sort();
                cols.into_iter().map(|(_, n)| n).collect()
            }
        })
    }

    /// Every row of a target table into `out`, streamed (a cursor, not one
    /// result held in memory); returns how many.
    fn rows(&mut self, table: &str, key: &[String], out: &mut Spill) -> anyhow::Result<u64> {
        self.rows_where(table, key, None, &mut |k, values| out.push(&k, &values))
    }

    /// The rows of a target table that `filter` selects (all without one),
    /// to `add` with their keys, streamed; returns how many.
    fn rows_where(
        &mut self,
        table: &str,
        key: &[String],
        filter: Option<&ranges::TargetFilter>,
        add: &mut dyn FnMut(Key, Row) -> std::io::Result<()>,
    ) -> anyhow::Result<u64> {
        let mut n = 0u64;
        let mut add = |values: BTreeMap<String, Option<String>>| -> std::io::Result<()> {
            let k: Key = key
                .iter()
                .map(|k| values.get(k).cloned().flatten())
                .collect();
            n += 1;
            add(k, values)
        };
        match self {
            Target::Postgres { client, .. } => {
                let name = TableName::parse(table).map_err(anyhow::Error::msg)?;
                let Some((cols, _)) = crate::pg::columns::read_columns(client, &name)? else {
                    return Ok(0);
                };
                let select: Vec<String> = cols
                    .iter()
                    .map(|c| format!("{}::text", quote_ident(&c.name)))
                    .collect();
                let condition = match filter {
                    Some(ranges::TargetFilter::Postgres(sql)) => format!(" WHERE {sql}"),
                    Some(ranges::TargetFilter::Sqlite(..)) => {
                        anyhow::bail!("verify: a SQLite condition on a PostgreSQL target")
                    }
                    None => String::new(),
                };
                let sql = format!(
                    "SELECT {} FROM {}{condition}",
                    select.join(", "),
                    name.quoted()
                );
                let mut tx = client.transaction()?;
                let portal = tx.bind(sql.as_str(), &[])?;
                loop {
                    let rows = tx.query_portal(&portal, 5_000)?;
                    if rows.is_empty() {
                        break;
                    }
                    for row in rows {
                        let mut values = BTreeMap::new();
                        for (i, c) in cols.iter().enumerate() {
                            let text: Option<String> = row.get(i);
                            let v = text.as_deref().map(|t| values::from_text(c.type_oid, t));
                            values.insert(c.name.clone(), v.as_ref().and_then(values::canonical));
                        }
                        add(values)?;
                    }
                }
                tx.commit()?;
            }
            Target::Sqlite(conn) => {
                let exists: bool = conn
                    .query_row(
                        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                        [table],
                        |r| r.get(0),
                    )
                    .unwrap_or(false);
                if !exists {
                    return Ok(0);
                }
                let (condition, params) = match filter {
                    Some(ranges::TargetFilter::Sqlite(sql, params)) => {
                        (format!(" WHERE {sql}"), params.as_slice())
                    }
                    Some(ranges::TargetFilter::Postgres(_)) => {
                        anyhow::bail!("verify: a PostgreSQL condition on a SQLite target")
                    }
                    None => (String::new(), &[][..]),
                };
                let mut stmt =
                    conn.prepare(&format!("SELECT * FROM {}{condition}", quote_ident(table)))?;
                let names: Vec<String> =
                    stmt.column_names().iter().map(|s| s.to_string()).collect();
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                while let Some(row) = rows.next()? {
                    let mut values = BTreeMap::new();
                    for (i, n) in names.iter().enumerate() {
                        use rusqlite::types::ValueRef;
                        let v = match row.get_ref(i)? {
                            ValueRef::Null => Value::Null,
                            ValueRef::Integer(x) => Value::Int(x),
                            ValueRef::Real(x) => Value::Float(x),
                            ValueRef::Text(t) => {
                                Value::Text(String::from_utf8_lossy(t).into_owned().into())
                            }
                            ValueRef::Blob(b) => Value::Bytes(b.to_vec().into()),
                        };
                        values.insert(n.clone(), values::canonical(&v));
                    }
                    add(values)?;
                }
            }
        }
        Ok(n)
    }
}
