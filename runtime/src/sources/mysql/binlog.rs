//! Following the ROW binlog: a replica's connection (`COM_BINLOG_DUMP`)
//! from a position, each transaction's row changes handed on as records
//! and the position after it as the resume token. A lost connection is
//! retried with backoff from the last transaction handed on; the part of
//! a transaction already handed on is skipped when it is read again.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::Value as My;
use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use sluice_codec::{Operation, Record, Value};

use super::catalog::{Server, Table};
use super::rows;
use super::values::{self, Origin};
use super::{BinlogPos, MysqlSource, Position, explain, is_transient};
use crate::conventions::{KEY_HEADER, OLD_KEY_HEADER, TRUNCATE_HEADER};
use crate::schema_policy::OnSchemaChange;
use crate::sources::postgres::SchemaChanges;
use crate::sources::{Lag, Malformed, SourceContext, SourceError};

/// MariaDB's GTID event, which `mysql_common` does not know.
const MARIADB_GTID_EVENT: u8 = 162;
/// MariaDB's compressed query and row events (`log_bin_compress`).
const MARIADB_COMPRESSED: std::ops::RangeInclusive<u8> = 165..=171;

/// Why following stopped.
enum Fail {
    /// The connection was lost: reconnect.
    Lost(String),
    /// Stop the run.
    Fatal(SourceError),
}

impl From<SourceError> for Fail {
    fn from(e: SourceError) -> Self {
        Fail::Fatal(e)
    }
}

struct Followed {
    table: Table,
    /// `on_schema_change = "dead_letter"` hit it: its rows are dead
    /// letters until the run ends, for this reason.
    held: Option<String>,
}

/// Follows the binlog for the source's tables.
pub struct Streamer<'a> {
    source: &'a MysqlSource,
    server: Server,
    tables: Vec<Followed>,
    /// Binlog table ids of the current stream: which table (if ours).
    by_id: HashMap<u64, Option<usize>>,
    /// The end of the last transaction whose changes are handed on.
    committed: BinlogPos,
    /// MariaDB GTID position by domain.
    gtid: BTreeMap<u32, String>,
    /// The file being read.
    file: String,
    /// The open transaction's GTID (domain and text).
    pending_gtid: Option<(u32, String)>,
    in_txn: bool,
    standalone: bool,
    /// Records of the open transaction handed on so far.
    txn_pushed: u64,
    /// Records of the open transaction to skip (handed on before a
    /// reconnect).
    skip: u64,
    full: bool,
    first_pending: Option<Instant>,
    last_event_ts: u32,
    /// Where `--until-caught-up` stops.
    target: Option<BinlogPos>,
    /// A connection beside the stream: lag, catalog reads.
    side: Option<mysql_async::Conn>,
    checksum: bool,
    seen_fde: bool,
    progressed: bool,
}

impl<'a> Streamer<'a> {
    /// A streamer from `start` (a transaction boundary).
    pub fn new(
        source: &'a MysqlSource,
        server: Server,
        tables: Vec<Table>,
        start: BinlogPos,
    ) -> Self {
        let gtid = parse_gtid(&start.gtid);
        Streamer {
            source,
            server,
            tables: tables
                .into_iter()
                .map(|table| Followed { table, held: None })
                .collect(),
            by_id: HashMap::new(),
            file: start.file.clone(),
            committed: start,
            gtid,
            pending_gtid: None,
            in_txn: false,
            standalone: false,
            txn_pushed: 0,
            skip: 0,
            full: false,
            first_pending: None,
            last_event_ts: 0,
            target: None,
            side: None,
            checksum: true,
            seen_fde: false,
            progressed: false,
        }
    }

    fn token(&self) -> String {
        Position::Stream {
            binlog: self.committed.clone(),
        }
        .token()
    }

    /// Follows until stopped (or caught up with `--until-caught-up`).
    pub async fn run(mut self, ctx: &mut SourceContext<'_>) -> Result<(), SourceError> {
        let source = self.source;
        self.side = source.connect().await.ok();
        if source.config.until_caught_up {
            let side = match self.side.as_mut() {
                Some(s) => s,
                None => {
                    self.side = Some(source.connect().await?);
                    self.side
                        .as_mut()
                        .ok_or_else(|| source.err("no connection"))?
                }
            };
            let end = source.master_position(side, self.server.mariadb).await?;
            tracing::info!(until = %end, "following the binlog until this position (--until-caught-up)");
            self.target = Some(end);
        }
        let patience = Duration::from_secs(source.config.reconnect_for_s);
        let mut failing_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(250);
        loop {
            if ctx.should_stop() {
                return Ok(());
            }
            self.progressed = false;
            let outcome = match self.open().await {
                Ok(stream) => self.follow(stream, ctx).await,
                Err(f) => Err(f),
            };
            let why = match outcome {
                Ok(()) => return Ok(()),
                Err(Fail::Fatal(e)) => return Err(e),
                Err(Fail::Lost(why)) => why,
            };
            if self.progressed {
                failing_since = None;
                backoff = Duration::from_millis(250);
            }
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= patience {
                return Err(source.err(format!(
                    "lost the binlog connection and could not follow again for {} s (`reconnect_for_s`): {why}; the position is kept at {}",
                    patience.as_secs(),
                    self.committed
                )));
            }
            tracing::warn!(error = %why, retry_in_ms = backoff.as_millis() as u64, from = %self.committed, "binlog connection lost; reconnecting");
            ctx.feedback().set_state(format!("reconnecting: {why}"));
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if ctx.should_stop() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
            // What was handed on of the open transaction is skipped when
            // it is read again.
            // (added to what was still to be skipped when the connection
            // was lost again while reading it a second time).
            self.skip += self.txn_pushed;
            self.txn_pushed = 0;
            self.in_txn = false;
            self.pending_gtid = None;
            self.file = self.committed.file.clone();
            self.side = None;
        }
    }

    /// A replica connection reading from the committed position.
    async fn open(&mut self) -> Result<mysql_async::BinlogStream, Fail> {
        let source = self.source;
        let at = super::describe_url(&source.config.url);
        let lost = |e: mysql_async::Error| {
            if is_transient(&e) {
                Fail::Lost(explain(&e, &at))
            } else {
                Fail::Fatal(source.err(explain(&e, &at)))
            }
        };
        let opts = mysql_async::OptsBuilder::from_opts(source.opts.clone()).prefer_socket(false);
        let mut conn = mysql_async::Conn::new(opts).await.map_err(lost)?;
        let checksum: Option<String> = conn
            .query_first("SELECT @@global.binlog_checksum")
            .await
            .map_err(lost)?;
        self.checksum = checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
        // A heartbeat every second while the binlog is idle: a dead
        // connection is noticed, and lag is kept current.
        conn.query_drop("SET @master_heartbeat_period = 1000000000")
            .await
            .map_err(lost)?;
        let mut request = mysql_async::BinlogStreamRequest::new(source.server_id());
        let by_gtid = self.server.mariadb && !self.committed.gtid.is_empty();
        if self.server.mariadb {
            // GTID events (and the rest of MariaDB's own) as they are.
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(lost)?;
        }
        if by_gtid {
            conn.exec_drop(
                "SET @slave_connect_state = ?, @slave_gtid_strict_mode = 0, @slave_gtid_ignore_duplicates = 0",
                (self.committed.gtid.as_str(),),
            )
            .await
            .map_err(lost)?;
        } else {
            request = request
                .with_filename(self.committed.file.as_bytes())
                .with_pos(self.committed.pos);
        }
        tracing::info!(from = %self.committed, by_gtid, "reading the binlog");
        conn.get_binlog_stream(request).await.map_err(lost)
    }

    /// Reads events until stopped, caught up or the connection fails.
    async fn follow(
        &mut self,
        mut stream: mysql_async::BinlogStream,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), Fail> {
        let linger = Duration::from_millis(self.source.config.linger_ms);
        let mut last_lag = Instant::now() - Duration::from_secs(10);
        self.seen_fde = false;
        self.by_id.clear();
        ctx.feedback().set_state("streaming");
        loop {
            if ctx.should_stop() {
                return Ok(());
            }
            if last_lag.elapsed() >= Duration::from_secs(1) {
                self.update_lag(ctx).await;
                last_lag = Instant::now();
            }
            if let Some(t) = &self.target
                && self.committed.at_or_after(t)
                && !self.in_txn
            {
                if ctx.flush(&self.token()).is_err() {
                    return Ok(());
                }
                ctx.wait_for_last_commit(Duration::from_secs(300));
                tracing::info!(at = %self.committed, "caught up with the binlog (--until-caught-up)");
                return Ok(());
            }
            let wait = match self.first_pending {
                Some(t) => linger.saturating_sub(t.elapsed()),
                None => Duration::from_secs(1),
            };
            let next = tokio::time::timeout(wait, stream.next()).await;
            let event = match next {
                Err(_) => {
                    self.flush_if_pending(ctx)?;
                    continue;
                }
                Ok(None) => return Err(Fail::Lost("the server ended the binlog stream".into())),
                Ok(Some(Err(e))) => return Err(self.stream_error(e)),
                Ok(Some(Ok(ev))) => ev,
            };
            let committed = self.event(&event, &stream, ctx).await?;
            if committed && self.first_pending.is_some() {
                let due = self.first_pending.is_some_and(|t| t.elapsed() >= linger);
                if self.full || due {
                    self.flush_if_pending(ctx)?;
                }
            }
        }
    }

    fn flush_if_pending(&mut self, ctx: &mut SourceContext<'_>) -> Result<(), Fail> {
        if self.in_txn || !ctx.has_pending() {
            return Ok(());
        }
        let token = self.token();
        self.full = false;
        self.first_pending = None;
        if ctx.flush(&token).is_err() {
            // Stopping: the loop sees the flag.
            return Ok(());
        }
        Ok(())
    }

    fn stream_error(&self, e: mysql_async::Error) -> Fail {
        let at = super::describe_url(&self.source.config.url);
        if let mysql_async::Error::Server(s) = &e
            && s.code == 1236
        {
            return Fail::Fatal(SourceError::Checkpoint {
                path: self.source.at.clone().into(),
                message: format!(
                    "the binlog from {} is no longer on the server ({}): the changes since then cannot be read, so the tables must be copied again",
                    self.committed, s.message
                ),
            });
        }
        if is_transient(&e) {
            Fail::Lost(explain(&e, &at))
        } else {
            Fail::Fatal(self.source.err(format!(
                "reading the binlog at {}:{}: {}",
                self.file,
                self.committed.pos,
                explain(&e, &at)
            )))
        }
    }

    /// Handles one event; true when it ended a transaction.
    async fn event(
        &mut self,
        ev: &Event,
        stream: &mysql_async::BinlogStream,
        ctx: &mut SourceContext<'_>,
    ) -> Result<bool, Fail> {
        let h = ev.header();
        let raw = h.event_type_raw();
        if h.timestamp() != 0 {
            self.last_event_ts = h.timestamp();
        }
        if raw == MARIADB_GTID_EVENT {
            let d = ev.data();
            if d.len() >= 13 {
                let seq = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
                let domain = u32::from_le_bytes(d[8..12].try_into().unwrap_or_default());
                self.pending_gtid = Some((domain, format!("{domain}-{}-{seq}", h.server_id())));
                // FL_STANDALONE: one statement (DDL), no XID follows.
                self.standalone = d[12] & 1 != 0;
            }
            self.in_txn = true;
            return Ok(false);
        }
        if MARIADB_COMPRESSED.contains(&raw) {
            return Err(Fail::Fatal(self.source.err(
                "the binlog holds compressed events (`log_bin_compress = ON`), which this source cannot read: set `log_bin_compress = OFF` on the server",
            )));
        }
        let data = ev.read_data().map_err(|e| {
            Fail::Fatal(self.source.err(format!(
                "cannot decode the binlog event at {}:{}: {e}",
                self.file,
                h.log_pos()
            )))
        })?;
        let Some(data) = data else {
            // MariaDB's own events between transactions (GTID lists,
            // binlog checkpoints) move the position on.
            self.passed(h.log_pos());
            return Ok(false);
        };
        match data {
            EventData::FormatDescriptionEvent(_) => {
                self.seen_fde = true;
                self.passed(h.log_pos());
                Ok(false)
            }
            EventData::RotateEvent(r) => {
                let mut name = r.name_raw().to_vec();
                // The first, artificial rotate comes before the format
                // description, so its checksum was read as part of the name.
                if !self.seen_fde && self.checksum && name.len() > 4 {
                    name.truncate(name.len() - 4);
                }
                self.file = String::from_utf8_lossy(&name).into_owned();
                if h.log_pos() != 0 && !self.in_txn {
                    self.committed.file = self.file.clone();
                    self.committed.pos = r.position();
                }
                Ok(false)
            }
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let trimmed = sql.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    self.in_txn = true;
                    return Ok(false);
                }
                if trimmed.eq_ignore_ascii_case("COMMIT")
                    || trimmed.eq_ignore_ascii_case("ROLLBACK")
                {
                    self.commit(h.log_pos());
                    return Ok(true);
                }
                let schema = q.schema().into_owned();
                self.statement(&schema, trimmed, h.log_pos(), h.timestamp(), ctx)
                    .await?;
                if !self.in_txn || self.standalone {
                    self.commit(h.log_pos());
                    return Ok(true);
                }
                Ok(false)
            }
            EventData::XidEvent(_) => {
                self.commit(h.log_pos());
                Ok(true)
            }
            EventData::TableMapEvent(tme) => {
                self.table_map(&tme, h.log_pos(), ctx).await?;
                Ok(false)
            }
            EventData::RowsEvent(re) => {
                self.rows(&re, stream, h.log_pos(), h.timestamp(), ctx)?;
                Ok(false)
            }
            EventData::HeartbeatEvent => Ok(false),
            _ => {
                self.passed(h.log_pos());
                Ok(false)
            }
        }
    }

    /// An event outside any transaction: the position moves past it (so
    /// `--until-caught-up` reaches a binlog end that holds no changes).
    fn passed(&mut self, log_pos: u32) {
        if self.in_txn || log_pos == 0 || !self.seen_fde {
            return;
        }
        let here = BinlogPos {
            file: self.file.clone(),
            pos: u64::from(log_pos),
            gtid: String::new(),
        };
        // Never back: a stream resumed mid-file starts with the file's
        // format description, which lies before the position.
        if here.at_or_after(&self.committed) {
            self.committed.file = here.file;
            self.committed.pos = here.pos;
        }
    }

    fn commit(&mut self, log_pos: u32) {
        self.committed.file = self.file.clone();
        if log_pos != 0 {
            self.committed.pos = u64::from(log_pos);
        }
        if let Some((domain, text)) = self.pending_gtid.take() {
            self.gtid.insert(domain, text);
            self.committed.gtid = self.gtid.values().cloned().collect::<Vec<_>>().join(",");
        }
        self.in_txn = false;
        self.standalone = false;
        self.txn_pushed = 0;
        self.skip = 0;
        self.progressed = true;
    }

    fn followed(&self, db: &str, name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|f| f.table.database == db && f.table.name == name)
    }

    async fn table_map(
        &mut self,
        tme: &TableMapEvent<'_>,
        log_pos: u32,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), Fail> {
        let idx = self.followed(&tme.database_name(), &tme.table_name());
        self.by_id.insert(tme.table_id(), idx);
        let Some(i) = idx else {
            return Ok(());
        };
        let count = tme.columns_count() as usize;
        if count < self.tables[i].table.columns.len()
            && self.tables[i].table.key.iter().all(|&k| k < count)
        {
            // Rows written before columns were added at the end (while
            // this pipeline was stopped): the first columns are theirs.
            return Ok(());
        }
        if count != self.tables[i].table.columns.len() {
            // Columns changed without a statement seen here (or since the
            // last catalog read): read the catalog again.
            self.refresh(i, log_pos, ctx).await?;
            let now = self.tables[i].table.columns.len();
            if count != now {
                let t = &self.tables[i].table;
                return Err(Fail::Fatal(self.source.err(format!(
                    "table `{}.{}`: the binlog's rows at {}:{log_pos} have {count} columns, the table now has {now}: it changed after these rows were written (a column dropped or moved), so their values cannot be matched to column names: set `binlog_row_metadata = FULL` on the server for the future, and copy the tables again (`sluice run --reset`)",
                    t.database, t.name, self.file
                ))));
            }
        }
        Ok(())
    }

    /// A statement in the binlog: DDL on a followed table.
    async fn statement(
        &mut self,
        schema: &str,
        sql: &str,
        log_pos: u32,
        ts: u32,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), Fail> {
        let Some((verb, db, name)) = ddl_target(sql) else {
            return Ok(());
        };
        let db = db.unwrap_or_else(|| schema.to_string());
        let Some(i) = self.followed(&db, &name) else {
            return Ok(());
        };
        match verb {
            Ddl::Truncate => {
                let t = &self.tables[i].table;
                tracing::warn!(table = %format!("{db}.{name}"), "TRUNCATE at the source: emptying the target table");
                let rec = Record {
                    op: Operation::Delete,
                    stream: t.stream.as_str().into(),
                    position: format!("{}:{log_pos}", self.file).into(),
                    event_time: Some(i64::from(ts) * 1_000_000),
                    key: Value::Null,
                    // The key header too: a sink keyed by it knows to empty.
                    headers: vec![
                        (TRUNCATE_HEADER.into(), b"1".to_vec().into()),
                        (KEY_HEADER.into(), t.key_names.as_bytes().into()),
                    ],
                    fields: Vec::new(),
                };
                self.note_pending(ctx.push(&rec));
            }
            Ddl::Alter => self.refresh(i, log_pos, ctx).await?,
            Ddl::Gone => {
                tracing::warn!(table = %format!("{db}.{name}"), statement = %sql.chars().take(200).collect::<String>(), "a followed table was dropped or renamed at the source; its changes under the old name stop");
            }
        }
        Ok(())
    }

    fn note_pending(&mut self, full: bool) {
        self.full |= full;
        self.first_pending.get_or_insert_with(Instant::now);
    }

    /// Reads table `i` from the catalog again and applies the schema
    /// change policy to the difference.
    async fn refresh(
        &mut self,
        i: usize,
        log_pos: u32,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), Fail> {
        let source = self.source;
        if self.side.is_none() {
            self.side = Some(source.connect().await?);
        }
        let (db, name, stream) = {
            let t = &self.tables[i].table;
            (t.database.clone(), t.name.clone(), t.stream.clone())
        };
        let side = self
            .side
            .as_mut()
            .ok_or_else(|| Fail::Lost("no catalog connection".into()))?;
        let new =
            match super::catalog::describe(side, &db, &name, stream.clone(), self.server.mariadb)
                .await
            {
                Ok(t) => t,
                Err(m) => {
                    self.side = None;
                    // Read again after a reconnect, from before the change.
                    return Err(Fail::Lost(m));
                }
            };
        let old = &self.tables[i].table;
        let mut changes = Vec::new();
        let mut breaking = Vec::new();
        for (c, decl) in new.columns.iter().zip(&new.declared) {
            match old.columns.iter().position(|o| o.name == c.name) {
                None => changes.push(format!("column `{}` added", c.name)),
                Some(j) if old.declared[j] != *decl || old.columns[j].kind != c.kind => {
                    let what = format!(
                        "column `{}` changed type ({} to {})",
                        c.name, old.columns[j].column_type, c.column_type
                    );
                    changes.push(what.clone());
                    if !widens(&old.declared[j], decl) {
                        breaking.push(what);
                    }
                }
                Some(_) => {}
            }
        }
        for o in &old.columns {
            if !new.columns.iter().any(|c| c.name == o.name) {
                changes.push(format!("column `{}` dropped", o.name));
            }
        }
        if old.key_names != new.key_names {
            let what = format!(
                "key changed from ({}) to ({})",
                old.key_names, new.key_names
            );
            changes.push(what.clone());
            breaking.push(what);
        }
        if changes.is_empty() {
            return Ok(());
        }
        let table = format!("{db}.{name}");
        let what = changes.join("; ");
        let policy = crate::schema_policy::policy_for(
            source.config.on_schema_change.as_ref(),
            &stream,
            OnSchemaChange::Evolve,
        );
        match policy {
            OnSchemaChange::Stop => {
                self.flush_if_pending(ctx)?;
                return Err(Fail::Fatal(source.err(format!(
                    "table `{table}` changed at the source at {}:{log_pos} ({what}) and `on_schema_change = \"stop\"`: adapt the target and the plugins, then run again with `on_schema_change = \"evolve\"` for it; the position is kept before the change",
                    self.file
                ))));
            }
            OnSchemaChange::DeadLetter => {
                tracing::warn!(table = %table, changes = %what, "table changed at the source: its rows go to the dead-letter sink until the next run (`on_schema_change = \"dead_letter\"`)");
                self.tables[i].held.get_or_insert_with(|| {
                    format!(
                        "table `{table}` changed at the source ({what}) and `on_schema_change = \"dead_letter\"` holds its rows back until the next run: adapt the target and the plugins, restart, then `sluice replay --code schema_change`"
                    )
                });
            }
            OnSchemaChange::Evolve => {
                if !breaking.is_empty() && source.config.schema_changes == SchemaChanges::Stop {
                    self.flush_if_pending(ctx)?;
                    return Err(Fail::Fatal(source.err(format!(
                        "table `{table}` changed at the source at {}:{log_pos}: {}: adapt the target and the plugins, then restart with `schema_changes = \"continue\"`; the position is kept before the change",
                        self.file,
                        breaking.join("; ")
                    ))));
                }
                tracing::info!(table = %table, changes = %what, "table changed at the source; the change flows on");
            }
        }
        ctx.feedback()
            .declared_types()
            .declare(&new.stream, new.declared_columns());
        self.tables[i].table = new;
        Ok(())
    }

    fn rows(
        &mut self,
        re: &RowsEventData<'_>,
        stream: &mysql_async::BinlogStream,
        log_pos: u32,
        ts: u32,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), Fail> {
        let Some(Some(i)) = self.by_id.get(&re.table_id()).copied() else {
            return Ok(());
        };
        let Some(tme) = stream.get_tme(re.table_id()) else {
            return Ok(());
        };
        let op = match re {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                Operation::Insert
            }
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => {
                Operation::Update
            }
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                Operation::Delete
            }
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(Fail::Fatal(self.source.err(
                    "the binlog holds partial JSON updates (`binlog_row_value_options = PARTIAL_JSON`), which carry no full row: set it to '' on the server",
                )));
            }
        };
        let zero = self.source.config.zero_dates;
        let gtid = self.pending_gtid.as_ref().map(|(_, g)| g.clone());
        let event_time = Some(i64::from(ts) * 1_000_000);
        for (n, row) in re.rows(tme).enumerate() {
            let (before, after) = row.map_err(|e| {
                Fail::Fatal(self.source.err(format!(
                    "cannot decode a row of `{}` at {}:{log_pos}: {e}",
                    self.tables[i].table.name, self.file
                )))
            })?;
            if self.skip > 0 {
                self.skip -= 1;
                self.txn_pushed += 1;
                continue;
            }
            let position = match &gtid {
                Some(g) => format!("{}:{log_pos}#{n} {g}", self.file),
                None => format!("{}:{log_pos}#{n}", self.file),
            };
            let image =
                |r: Option<mysql_async::binlog::row::BinlogRow>| -> Result<Vec<My>, String> {
                    let r = r.ok_or("a row image is missing")?;
                    (0..r.len()).map(|c| to_my(r.as_ref(c))).collect()
                };
            let t = &self.tables[i];
            let fail = |m: String| {
                Fail::Fatal(
                    self.source
                        .err(format!("`{}` at {position}: {m}", t.table.name)),
                )
            };
            let (main, before) = match op {
                Operation::Delete => (image(before), None),
                Operation::Update => (image(after), before),
                _ => (image(after), None),
            };
            let main = main.map_err(fail)?;
            // An update's old key, when the key changed: only the key
            // columns of the before image are read.
            let old_key = match (op, before) {
                (Operation::Update, None) => {
                    return Err(fail("an update without its before image".into()));
                }
                (Operation::Update, Some(b)) => {
                    let old: Vec<My> = t
                        .table
                        .key
                        .iter()
                        .map(|&k| to_my(b.as_ref(k)))
                        .collect::<Result<_, _>>()
                        .map_err(fail)?;
                    let moved = t
                        .table
                        .key
                        .iter()
                        .zip(&old)
                        .any(|(&k, o)| main.get(k) != Some(o));
                    moved.then(|| {
                        let mut obj = serde_json::Map::new();
                        for (&k, o) in t.table.key.iter().zip(&old) {
                            let c = &t.table.columns[k];
                            let v = values::convert(c, o, Origin::Binlog).unwrap_or(Value::Null);
                            obj.insert(c.name.clone(), crate::value_json::value_to_json(&v));
                        }
                        serde_json::Value::Object(obj).to_string()
                    })
                }
                _ => None,
            };
            let mut built = rows::record(
                &t.table,
                op,
                position,
                event_time,
                &main,
                Origin::Binlog,
                zero,
            );
            if let Some(old_key) = old_key {
                built
                    .record
                    .headers
                    .push((OLD_KEY_HEADER.into(), old_key.into_bytes().into()));
            }
            let full = if let Some(reason) = &t.held {
                ctx.push_schema_change(&built.record, reason.clone())
            } else if let Some(reason) = built.bad {
                ctx.push_malformed(Malformed {
                    position: built.record.position.to_string(),
                    stream: t.table.stream.clone(),
                    raw: crate::value_json::record_json_text(&built.record),
                    reason,
                    record: None,
                })
            } else {
                ctx.push(&built.record)
            };
            self.txn_pushed += 1;
            self.note_pending(full);
        }
        Ok(())
    }

    /// Lag: the binlog bytes after the committed position, and the age of
    /// the last event read while behind.
    async fn update_lag(&mut self, ctx: &mut SourceContext<'_>) {
        if self.side.is_none() {
            self.side = self.source.connect().await.ok();
        }
        let Some(side) = self.side.as_mut() else {
            return;
        };
        let logs: Vec<mysql_async::Row> = match side.query("SHOW BINARY LOGS").await {
            Ok(r) => r,
            Err(_) => {
                self.side = None;
                return;
            }
        };
        let seq = |f: &str| -> u64 {
            f.rsplit('.')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let ours = seq(&self.committed.file);
        let mut behind = 0u64;
        for r in &logs {
            let name: String = r.get(0).unwrap_or_default();
            let size: u64 = r.get(1).unwrap_or(0);
            let s = seq(&name);
            if s > ours {
                behind += size;
            } else if s == ours {
                behind += size.saturating_sub(self.committed.pos);
            }
        }
        let seconds = if behind > 0 && self.last_event_ts > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            (now - f64::from(self.last_event_ts)).max(0.0)
        } else {
            0.0
        };
        ctx.feedback().set_lag(Lag {
            bytes: behind,
            seconds,
            records: None,
            retained_bytes: None,
            warning: None,
        });
    }
}

/// A column type change that keeps every value (`int` to `bigint`,
/// `varchar` to `text`, a wider `numeric`).
fn widens(from: &str, to: &str) -> bool {
    let rank = |t: &str| match t {
        "smallint" => Some(1),
        "integer" => Some(2),
        "bigint" => Some(3),
        "numeric(20,0)" => Some(4),
        _ => None,
    };
    if let (Some(a), Some(b)) = (rank(from), rank(to)) {
        return b >= a;
    }
    from == to
}

/// A binlog value as a protocol value.
fn to_my(v: Option<&BinlogValue<'_>>) -> Result<My, String> {
    match v {
        None => Ok(My::NULL),
        Some(BinlogValue::Value(v)) => Ok(v.clone()),
        Some(BinlogValue::Jsonb(j)) => serde_json::Value::try_from(j.clone())
            .map(|j| My::Bytes(j.to_string().into_bytes()))
            .map_err(|e| format!("a JSON value cannot be read: {e}")),
        Some(BinlogValue::JsonDiff(_)) => Err("a partial JSON update carries no full value".into()),
    }
}

/// `0-1-100,1-2-5` by domain.
fn parse_gtid(s: &str) -> BTreeMap<u32, String> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .filter_map(|g| Some((g.split('-').next()?.parse().ok()?, g.to_string())))
        .collect()
}

/// What a DDL statement does to a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ddl {
    /// `TRUNCATE`.
    Truncate,
    /// `ALTER TABLE`.
    Alter,
    /// `DROP TABLE`, `RENAME TABLE`.
    Gone,
}

/// The statement's kind and first table (database if named), for the
/// statements that matter here.
pub fn ddl_target(sql: &str) -> Option<(Ddl, Option<String>, String)> {
    static RE: std::sync::OnceLock<regex_lite::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex_lite::Regex::new(
            r"(?is)^\s*(?:/\*.*?\*/\s*)*(truncate(?:\s+table)?|alter\s+(?:online\s+)?(?:ignore\s+)?table|drop\s+(?:temporary\s+)?table(?:\s+if\s+exists)?|rename\s+table)\s+(?:/\*.*?\*/\s*)*((?:`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?)",
        )
        .expect("the DDL pattern compiles")
    });
    let caps = re.captures(sql)?;
    let verb = caps.get(1)?.as_str().to_ascii_lowercase();
    if verb.starts_with("drop temporary") {
        return None;
    }
    let kind = if verb.starts_with("truncate") {
        Ddl::Truncate
    } else if verb.starts_with("alter") {
        Ddl::Alter
    } else {
        Ddl::Gone
    };
    let unquote = |s: &str| {
        let s = s.trim();
        match s.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
            Some(inner) => inner.replace("``", "`"),
            None => s.to_string(),
        }
    };
    let name = caps.get(2)?.as_str();
    // Split on the dot outside backticks.
    let mut in_q = false;
    let mut split = None;
    for (i, c) in name.char_indices() {
        match c {
            '`' => in_q = !in_q,
            '.' if !in_q => split = Some(i),
            _ => {}
        }
    }
    Some(match split {
        Some(i) => (kind, Some(unquote(&name[..i])), unquote(&name[i + 1..])),
        None => (kind, None, unquote(name)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ddl_statements_name_their_table() {
        assert_eq!(
            ddl_target("TRUNCATE TABLE `shop`.`orders`"),
            Some((Ddl::Truncate, Some("shop".into()), "orders".into()))
        );
        assert_eq!(
            ddl_target("truncate orders"),
            Some((Ddl::Truncate, None, "orders".into()))
        );
        assert_eq!(
            ddl_target("/* x */ ALTER TABLE orders ADD COLUMN note text"),
            Some((Ddl::Alter, None, "orders".into()))
        );
        assert_eq!(
            ddl_target("alter online ignore table `we``ird`.t add x int"),
            Some((Ddl::Alter, Some("we`ird".into()), "t".into()))
        );
        assert_eq!(
            ddl_target("DROP TABLE IF EXISTS `orders` /* generated by server */"),
            Some((Ddl::Gone, None, "orders".into()))
        );
        assert_eq!(ddl_target("DROP TEMPORARY TABLE t"), None);
        assert_eq!(ddl_target("CREATE TABLE t (id int)"), None);
        assert_eq!(ddl_target("INSERT INTO t VALUES (1)"), None);
    }

    #[test]
    fn gtid_positions_by_domain() {
        let g = parse_gtid("0-1-100, 1-2-5");
        assert_eq!(g.get(&0).map(String::as_str), Some("0-1-100"));
        assert_eq!(g.get(&1).map(String::as_str), Some("1-2-5"));
        assert!(parse_gtid("").is_empty());
    }

    #[test]
    fn widening_changes_keep_values() {
        assert!(widens("integer", "bigint"));
        assert!(!widens("bigint", "integer"));
        assert!(widens("text", "text"));
        assert!(!widens("text", "integer"));
    }
}
