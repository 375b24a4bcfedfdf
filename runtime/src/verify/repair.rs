//! `sluice verify --repair`: the rows `verify` found missing, different or
//! extra in the target, re-synced from the source through the plugins.
//!
//! The source tables are read again in one snapshot and run through the
//! pipeline's plugins, as `verify` does; the records whose target key was
//! found missing or different are written to the sink (as a sync writes
//! them: typed, upserted by key), and the extra keys are deleted from the
//! target. Rows the plugins refuse are left to the dead-letter sink, as a
//! sync leaves them. `verify` runs again afterwards, so the report ends with
//! the proof.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use sluice_codec::{Operation, Record, Value};

use super::spill::Key;
use super::{Report, Target};
use crate::config::Pipeline;
use crate::pg::values;
use crate::pipeline;
use crate::sources::SourceConfig;

/// What a repair did to one table.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct TableRepair {
    /// The target table.
    pub table: String,
    /// Missing or different rows written again from the source.
    pub written: u64,
    /// Extra rows deleted.
    pub deleted: u64,
    /// Missing or different keys the source no longer gives (changed
    /// since `verify` read it) or the plugins now refuse: not written.
    pub not_found: u64,
    /// Rows the sink refused (they are in the report's `refusals`).
    pub refused: u64,
}

/// What `--repair` did.
#[derive(Debug, Default, Serialize)]
pub struct RepairReport {
    /// Per target table with something to repair.
    pub tables: Vec<TableRepair>,
    /// The sink's refusals, with why (at most 20).
    pub refusals: Vec<String>,
}

impl RepairReport {
    /// The report as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            out.push_str(&format!(
                "REPAIRED {}: written {}  deleted {}  not found {}  refused {}\n",
                t.table, t.written, t.deleted, t.not_found, t.refused
            ));
        }
        for r in &self.refusals {
            out.push_str(&format!("  refused: {r}\n"));
        }
        out
    }
}

/// Repairs what `found` (a `verify` report made with the keys) says
/// differs.
pub fn repair(pipeline: Pipeline, found: &Report) -> anyhow::Result<RepairReport> {
    let SourceConfig::Postgres(source) = pipeline.config.source.clone() else {
        anyhow::bail!("`--repair` re-reads a PostgreSQL source");
    };
    let mut report = RepairReport::default();
    let mut wanted: HashMap<String, HashSet<Key>> = HashMap::new();
    for t in &found.tables {
        if !t.differing_keys.is_empty() {
            wanted.insert(t.table.clone(), t.differing_keys.iter().cloned().collect());
        }
    }
    let mut per_table: BTreeMap<String, TableRepair> = found
        .tables
        .iter()
        .filter(|t| !t.differing_keys.is_empty() || !t.extra_keys.is_empty())
        .map(|t| {
            (
                t.table.clone(),
                TableRepair {
                    table: t.table.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    if per_table.is_empty() {
        return Ok(report);
    }
    let sink_config = pipeline.config.sink.clone();
    let mut target = Target::open(&sink_config)?;
    let batch_size = pipeline.config.runtime.batch_size.max(1);
    let mut prepared = pipeline::prepare(pipeline)?;
    let mut slots = prepared.take_slots();
    let mut sink = crate::sinks::build(&sink_config)?;
    sink.open(None)?;

    // The source again, through the plugins: what the target lacks or
    // holds differently is written as the sync would write it.
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    let mut streams: HashMap<String, String> = HashMap::new();
    let mut found_keys: HashMap<String, HashSet<Key>> = HashMap::new();
    let mut pending: Vec<Record<'static>> = Vec::with_capacity(batch_size);
    let mut out: Vec<Record<'static>> = Vec::new();
    let mut flush = |pending: &mut Vec<Record<'static>>,
                     out: &mut Vec<Record<'static>>,
                     target: &mut Target|
     -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let (batch, p) = pipeline::run_records(&mut slots, pending);
        pending.clear();
        let data = p.data(&batch);
        for s in &p.spans {
            let rec = Record::decode(&data[s.start as usize..s.end as usize])?;
            let table = target.table_for(&rec, &sink_config);
            // The stream a table's records carry: extra rows are deleted
            // under it.
            if !streams.contains_key(&table) {
                streams.insert(table.clone(), rec.stream.to_string());
            }
            let Some(want) = wanted.get(&table) else {
                continue;
            };
            let key_cols = match keys.get(&table) {
                Some(k) => k.clone(),
                None => {
                    let k = target.key_of(&table, &rec, &sink_config)?;
                    keys.insert(table.clone(), k.clone());
                    k
                }
            };
            let key: Key = key_cols
                .iter()
                .map(|k| rec.get(k).and_then(values::canonical))
                .collect();
            if want.contains(&key) {
                found_keys.entry(table).or_default().insert(key);
                out.push(rec.into_owned());
            }
        }
        Ok(())
    };
    let mut current_stream = String::new();
    crate::sources::postgres::snapshot::read_tables(&source, &mut |_, rec| {
        if rec.stream != current_stream.as_str() || pending.len() >= batch_size {
            flush(&mut pending, &mut out, &mut target).map_err(|e| e.to_string())?;
            current_stream = rec.stream.to_string();
        }
        pending.push(rec.into_owned());
        Ok(())
    })
    .map_err(anyhow::Error::msg)?;
    flush(&mut pending, &mut out, &mut target)?;

    // The extra keys: deleted by key, as a sync deletes.
    for t in &found.tables {
        if t.extra_keys.is_empty() {
            continue;
        }
        let key_cols = match keys.get(&t.table) {
            Some(k) => k.clone(),
            None => target.table_key(&t.table, &sink_config)?,
        };
        let stream = streams
            .get(&t.table)
            .cloned()
            .unwrap_or_else(|| t.table.clone());
        for key in &t.extra_keys {
            let mut r = Record {
                stream: stream.clone().into(),
                op: Operation::Delete,
                ..Default::default()
            };
            for (c, v) in key_cols.iter().zip(key) {
                let v = v
                    .as_ref()
                    .map_or(Value::Null, |s| Value::Text(s.clone().into()));
                r.fields.push((c.clone().into(), v));
            }
            r.headers.push((
                crate::conventions::KEY_HEADER.into(),
                key_cols.join(",").into_bytes().into(),
            ));
            out.push(r);
        }
    }

    for chunk in out.chunks(batch_size) {
        let c = sink.write(chunk)?;
        for refused in &c.refused {
            let rec = &chunk[refused.index];
            let table = target.table_for(rec, &sink_config);
            if let Some(t) = per_table.get_mut(&table) {
                t.refused += 1;
            }
            if report.refusals.len() < 20 {
                report
                    .refusals
                    .push(format!("{table} {}: {}", rec.position, refused.reason));
            }
        }
        let refused: HashSet<usize> = c.refused.iter().map(|r| r.index).collect();
        for (i, rec) in chunk.iter().enumerate() {
            if refused.contains(&i) {
                continue;
            }
            let table = target.table_for(rec, &sink_config);
            if let Some(t) = per_table.get_mut(&table) {
                if rec.op == Operation::Delete {
                    t.deleted += 1;
                } else {
                    t.written += 1;
                }
            }
        }
    }
    for t in &found.tables {
        if let Some(r) = per_table.get_mut(&t.table) {
            let seen = found_keys.get(&t.table).map_or(0, HashSet::len);
            r.not_found = (t.differing_keys.len() - seen.min(t.differing_keys.len())) as u64;
        }
    }
    report.tables = per_table.into_values().collect();
    Ok(report)
}
