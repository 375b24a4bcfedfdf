//! The snapshot in key ranges (`snapshot_workers`): each table is split at
//! keys sampled from it, and each range is read by a worker thread on a
//! connection of its own, all in one snapshot. The workers parse the `COPY`
//! text; the source thread builds and hands over the records, and
//! checkpoints how far each range got, so a restart goes on in each range
//! where it was.
//!
//! The snapshot: a planning connection imports the slot's exported snapshot
//! (first start) or takes a new one (a resume), exports it again
//! (`pg_export_snapshot`) and stays in that transaction while the tables
//! are copied; the workers import it. A worker that loses its connection,
//! or cannot import the snapshot any more, reads the rest of its range in a
//! newer snapshot, which the change stream then brings up to date, as for
//! a resumed snapshot (see the source's module docs).

use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Sender, bounded};
use serde::{Deserialize, Serialize};

use super::catalog::Table;
use super::records::RowBuilder;
use super::snapshot::{Copy, CopyRows, RowError, chunk_sql, snapshot_record};
use super::stream::SlotKeepAlive;
use super::{Position, PostgresSource};
use crate::pg::{self, quote_literal};
use crate::sources::{SourceContext, SourceError};

/// One key range of the table being copied, as the checkpoint keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeProgress {
    /// The key (text form) of the last row of the range handed over:
    /// the range goes on after it. `None`: from the table's first key.
    pub after: Option<Vec<String>>,
    /// The range's last key (included). `None`: to the table's end.
    pub until: Option<Vec<String>>,
    /// Every row of the range was handed over.
    #[serde(default)]
    pub done: bool,
}

/// Rows a worker hands over at a time.
const ROWS_PER_MESSAGE: usize = 512;

/// What a worker tells the source thread.
enum FromWorker {
    /// Rows of range `.0`, in key order (every column, text form).
    Rows(usize, Vec<Vec<Option<String>>>),
    /// Range `.0` is read to its end.
    Done(usize),
    /// Range `.0` cannot be read.
    Failed(SourceError),
}

impl Copy<'_> {
    /// Copies `tables[start..]`, each in key ranges read in parallel; the
    /// first of them from `resume` (the checkpoint's ranges) when given.
    /// `exported`: the slot connection holding the exported snapshot
    /// (first start only).
    pub fn run_parallel(
        &self,
        exported: Option<SlotKeepAlive>,
        start: usize,
        mut resume: Option<Vec<RangeProgress>>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        let source = self.source;
        let url = &source.config.url;
        let stop_flag = ctx.stop_flag();
        let stop = || stop_flag.load(Ordering::Relaxed);
        let mut plan =
            pg::connect_with_backoff(url, "sluice-snapshot", &stop).map_err(|m| source.err(m))?;
        self.begin(&mut plan, exported.as_ref())?;
        drop(exported);
        // The workers import the planning transaction's snapshot.
        let export = |plan: &mut postgres::Client| -> Option<String> {
            plan.query_one("SELECT pg_export_snapshot()", &[])
                .map(|r| r.get(0))
                .ok()
        };
        let mut shared = export(&mut plan);
        let started_at = chrono::Utc::now().timestamp_micros();
        let mut copied_total = 0u64;
        for table in &self.tables[start..] {
            let workers = source.config.snapshot_workers;
            let ranges = match resume.take() {
                Some(r) => r,
                None => match split(source, &mut plan, table, workers) {
                    Ok(r) => r,
                    // The planning connection went away: a new one, in a
                    // newer snapshot (the stream brings it up to date).
                    Err(_) if plan.is_closed() => {
                        tracing::warn!(table = %table.name, "snapshot: the planning connection was lost; going on in a newer snapshot");
                        plan = pg::connect_with_backoff(url, "sluice-snapshot", &stop)
                            .map_err(|m| source.err(m))?;
                        self.begin(&mut plan, None)?;
                        shared = export(&mut plan);
                        split(source, &mut plan, table, workers)?
                    }
                    Err(e) => return Err(e),
                },
            };
            tracing::info!(table = %table.name, ranges = ranges.len(), "snapshot: copying in key ranges");
            let t0 = std::time::Instant::now();
            let Some(copied) = self.copy_ranges(
                table,
                ranges,
                shared.as_deref(),
                started_at,
                &mut copied_total,
                ctx,
            )?
            else {
                return Ok(()); // Stopping.
            };
            let secs = t0.elapsed().as_secs_f64();
            tracing::info!(
                table = %table.name,
                rows = copied,
                rows_per_s = (copied as f64 / secs.max(1e-9)) as u64,
                "snapshot: table copied"
            );
        }
        let _ = plan.batch_execute("COMMIT");
        Ok(())
    }

    /// Reads the ranges of `table` with one worker each and hands their rows
    /// over; `None` when the pipeline is stopping.
    fn copy_ranges(
        &self,
        table: &Table,
        mut ranges: Vec<RangeProgress>,
        snapshot: Option<&str>,
        started_at: i64,
        copied_total: &mut u64,
        ctx: &mut SourceContext<'_>,
    ) -> Result<Option<u64>, SourceError> {
        let source = self.source;
        let stop_flag = ctx.stop_flag();
        let abandon = AtomicBool::new(false);
        let stream = table.name.stream();
        let key_names = table.key_names();
        let builder = RowBuilder {
            stream: &stream,
            key_names: &key_names,
        };
        let position = format!("snapshot@{}", self.lsn);
        let mut copied = 0u64;
        std::thread::scope(|scope| {
            let (tx, rx) = bounded::<FromWorker>(2 * ranges.len().max(1));
            for (i, range) in ranges.iter().enumerate().filter(|(_, r)| !r.done) {
                let tx = tx.clone();
                let range = range.clone();
                let (abandon, stop_flag) = (&abandon, stop_flag);
                let spawned = std::thread::Builder::new()
                    .name(format!("sluice-snap{i}"))
                    .spawn_scoped(scope, move || {
                        let give_up =
                            || abandon.load(Ordering::Relaxed) || stop_flag.load(Ordering::Relaxed);
                        if let Err(e) = read_range(source, table, i, range, snapshot, &tx, &give_up)
                        {
                            let _ = tx.send(FromWorker::Failed(e));
                        }
                    });
                if let Err(e) = spawned {
                    abandon.store(true, Ordering::Relaxed);
                    return Err(source.err(format!("cannot start a snapshot worker: {e}")));
                }
            }
            drop(tx);
            // Whatever way this ends, the workers stop.
            struct Abandon<'a>(&'a AtomicBool);
            impl Drop for Abandon<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let _abandon = Abandon(&abandon);
            while let Ok(message) = rx.recv() {
                match message {
                    FromWorker::Rows(i, rows) => {
                        for fields in &rows {
                            let rec = snapshot_record(
                                table,
                                &builder,
                                fields,
                                &position,
                                Some(started_at),
                            );
                            let full = ctx.push(&rec);
                            ranges[i].after = Some(
                                table
                                    .key
                                    .iter()
                                    .map(|&k| fields[k].clone().unwrap_or_default())
                                    .collect(),
                            );
                            copied += 1;
                            *copied_total += 1;
                            if full {
                                ctx.set_progress(*copied_total);
                                ctx.feedback()
                                    .set_state(format!("snapshot {}: {copied} rows", table.name));
                                let token = Position::Snapshot {
                                    lsn: self.lsn.to_string(),
                                    table: table.name.to_string(),
                                    after: None,
                                    ranges: Some(ranges.clone()),
                                }
                                .token();
                                if ctx.flush(&token).is_err() {
                                    return Ok(None);
                                }
                            }
                        }
                    }
                    FromWorker::Done(i) => ranges[i].done = true,
                    FromWorker::Failed(e) => return Err(e),
                }
            }
            ctx.set_progress(*copied_total);
            if ctx.should_stop() && ranges.iter().any(|r| !r.done) {
                return Ok(None);
            }
            if let Some(r) = ranges.iter().find(|r| !r.done) {
                return Err(source.err(format!(
                    "snapshot of `{}`: a worker ended before the end of its range (after {:?})",
                    table.name, r.after
                )));
            }
            Ok(Some(copied))
        })
    }
}

/// Reads range `i` of `table` in chunks and sends its rows; reconnects after
/// a lost connection and goes on after the last row sent.
fn read_range(
    source: &PostgresSource,
    table: &Table,
    i: usize,
    range: RangeProgress,
    snapshot: Option<&str>,
    tx: &Sender<FromWorker>,
    give_up: &dyn Fn() -> bool,
) -> Result<(), SourceError> {
    let url = &source.config.url;
    let limit = source.config.chunk_rows;
    let mut after = range.after;
    'connection: loop {
        let mut client =
            pg::connect_with_backoff(url, "sluice-snapshot", give_up).map_err(|m| source.err(m))?;
        // After a reconnect too: the shared snapshot lasts as long as the
        // planning connection's transaction.
        begin_in(source, &mut client, snapshot)?;
        loop {
            if give_up() {
                return Ok(());
            }
            let sql = chunk_sql(table, after.as_deref(), range.until.as_deref(), Some(limit));
            let mut reader = match client.copy_out(sql.as_str()) {
                Ok(r) => r,
                Err(e) if pg::is_connection_error(&e) => {
                    tracing::warn!(table = %table.name, range = i, error = %pg::explain(&e, url), "snapshot: connection lost; reconnecting and going on after the last row read");
                    continue 'connection;
                }
                Err(e) => {
                    return Err(source.err(format!(
                        "snapshot of `{}`: {}",
                        table.name,
                        pg::explain(&e, url)
                    )));
                }
            };
            let mut rows_in = CopyRows::new(table);
            let mut batch: Vec<Vec<Option<String>>> = Vec::with_capacity(ROWS_PER_MESSAGE);
            let mut read = 0usize;
            let mut lost = None;
            loop {
                match rows_in.next(&mut reader) {
                    Ok(Some(fields)) => {
                        batch.push(fields.to_vec());
                        read += 1;
                    }
                    Ok(None) => break,
                    // A broken COPY stream is a lost connection: the rows
                    // read whole so far are good.
                    Err(RowError::Read(m)) => {
                        lost = Some(m);
                        break;
                    }
                    Err(RowError::Data(m)) => {
                        return Err(source.err(format!("snapshot of {m}")));
                    }
                }
                if batch.len() == ROWS_PER_MESSAGE {
                    after = send(table, i, &mut batch, tx)?.or(after);
                }
            }
            drop(reader);
            after = send(table, i, &mut batch, tx)?.or(after);
            if let Some(m) = lost {
                tracing::warn!(table = %table.name, range = i, error = %m, "snapshot: connection lost; reconnecting and going on after the last row read");
                continue 'connection;
            }
            if read < limit {
                let _ = client.batch_execute("COMMIT");
                let _ = tx.send(FromWorker::Done(i));
                return Ok(());
            }
        }
    }
}

/// Sends the rows of `batch` (emptying it); the key of the last one.
/// `Err` when the source thread is gone (stopping): nothing more to do.
fn send(
    table: &Table,
    i: usize,
    batch: &mut Vec<Vec<Option<String>>>,
    tx: &Sender<FromWorker>,
) -> Result<Option<Vec<String>>, SourceError> {
    let Some(last) = batch.last() else {
        return Ok(None);
    };
    let key = table
        .key
        .iter()
        .map(|&k| last[k].clone().unwrap_or_default())
        .collect();
    let rows = std::mem::replace(batch, Vec::with_capacity(ROWS_PER_MESSAGE));
    tx.send(FromWorker::Rows(i, rows))
        .map_err(|_| SourceError::Server {
            at: format!("snapshot of `{}`", table.name),
            message: "the source stopped taking rows".into(),
        })?;
    Ok(Some(key))
}

/// Opens a read-only repeatable-read transaction, in `snapshot` if it can
/// still be imported.
fn begin_in(
    source: &PostgresSource,
    client: &mut postgres::Client,
    snapshot: Option<&str>,
) -> Result<(), SourceError> {
    let url = &source.config.url;
    let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    client
        .batch_execute(begin)
        .map_err(|e| source.err(pg::explain(&e, url)))?;
    if let Some(name) = snapshot
        && let Err(e) =
            client.batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(name)))
    {
        tracing::warn!(error = %pg::explain(&e, url), "snapshot: the shared snapshot cannot be imported any more; this range reads a newer one, which the change stream brings up to date");
        client
            .batch_execute(&format!("ROLLBACK; {begin}"))
            .map_err(|e| source.err(pg::explain(&e, url)))?;
    }
    Ok(())
}

/// Splits `table` into at most `n` key ranges of about the same number of
/// rows, at keys sampled from it (`TABLESAMPLE`, about 100 per range).
fn split(
    source: &PostgresSource,
    client: &mut postgres::Client,
    table: &Table,
    n: usize,
) -> Result<Vec<RangeProgress>, SourceError> {
    let whole = || {
        vec![RangeProgress {
            after: None,
            until: None,
            done: false,
        }]
    };
    if n <= 1 {
        return Ok(whole());
    }
    let url = &source.config.url;
    let estimate: i64 = client
        .query_opt(
            "SELECT greatest(c.reltuples, 0)::int8 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = $1 AND c.relname = $2",
            &[&table.name.schema, &table.name.name],
        )
        .map_err(|e| source.err(pg::explain(&e, url)))?
        .map_or(0, |r| r.get(0));
    let want = (100 * n) as f64;
    let percent = if estimate <= 0 {
        100.0
    } else {
        (100.0 * want / estimate as f64).clamp(0.001, 100.0)
    };
    let keys = super::snapshot::key_columns(table);
    let texts = table
        .key
        .iter()
        .map(|&i| format!("{}::text", crate::sql::quote_ident(&table.columns[i].name)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {texts} FROM {} TABLESAMPLE SYSTEM ({percent}) ORDER BY {keys}",
        table.name.quoted()
    );
    let sample: Vec<Vec<String>> = client
        .query(sql.as_str(), &[])
        .map_err(|e| {
            source.err(format!(
                "sampling `{}` to split it: {}",
                table.name,
                pg::explain(&e, url)
            ))
        })?
        .iter()
        .map(|r| {
            (0..table.key.len())
                .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                .collect()
        })
        .collect();
    Ok(ranges_at(&sample, n))
}

/// `n` ranges cut at evenly spaced keys of a sorted `sample` (fewer when
/// the sample is small or repeats keys).
fn ranges_at(sample: &[Vec<String>], n: usize) -> Vec<RangeProgress> {
    let mut cuts: Vec<Vec<String>> = Vec::new();
    if sample.len() >= n {
        for j in 1..n {
            let key = &sample[j * sample.len() / n];
            if cuts.last() != Some(key) {
                cuts.push(key.clone());
            }
        }
    }
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut after = None;
    for cut in cuts {
        ranges.push(RangeProgress {
            after: after.take(),
            until: Some(cut.clone()),
            done: false,
        });
        after = Some(cut);
    }
    ranges.push(RangeProgress {
        after,
        until: None,
        done: false,
    });
    ranges
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<Vec<String>> {
        v.iter().map(|k| vec![k.to_string()]).collect()
    }

    #[test]
    fn ranges_cut_at_sampled_keys_cover_everything_once() {
        let sample = keys(&["10", "20", "30", "40", "50", "60"]);
        let r = ranges_at(&sample, 3);
        type Bound = Option<Vec<String>>;
        let bounds: Vec<(Bound, Bound)> = r
            .iter()
            .map(|r| (r.after.clone(), r.until.clone()))
            .collect();
        let k = |s: &str| Some(vec![s.to_string()]);
        assert_eq!(
            bounds,
            vec![(None, k("30")), (k("30"), k("50")), (k("50"), None)]
        );
        // A small or repetitive sample gives fewer ranges, never a gap.
        assert_eq!(ranges_at(&keys(&["1"]), 4).len(), 1);
        assert_eq!(ranges_at(&[], 4).len(), 1);
        let same = ranges_at(&keys(&["5", "5", "5", "5"]), 4);
        assert_eq!(same.len(), 2);
        assert_eq!(same[0].until, same[1].after);
    }
}
