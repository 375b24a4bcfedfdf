//! The replay ledger: which dead letters were replayed, when, and what
//! came of them, so that each is replayed at most once. A SQLite file in
//! the pipeline's state directory (`NAME.replay.db`).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

/// The ledger of one pipeline.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl Ledger {
    /// The ledger file of pipeline `name` in `state_dir`.
    pub fn path(state_dir: &Path, name: &str) -> PathBuf {
        state_dir.join(format!("{name}.replay.db"))
    }

    /// Opens (or creates) the ledger of pipeline `name`.
    pub fn open(state_dir: &Path, name: &str) -> Result<Self, String> {
        let path = Self::path(state_dir, name);
        let fail = |e: rusqlite::Error| format!("replay ledger `{}`: {e}", path.display());
        std::fs::create_dir_all(state_dir)
            .map_err(|e| format!("cannot create `{}`: {e}", state_dir.display()))?;
        let conn = Connection::open(&path).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS replayed (
                 id TEXT PRIMARY KEY,
                 replayed_at TEXT NOT NULL,
                 outcome TEXT NOT NULL
             );",
        )
        .map_err(fail)?;
        Ok(Ledger { conn, path })
    }

    /// What came of dead letter `id`, if it was replayed.
    pub fn outcome(&self, id: &str) -> Result<Option<String>, String> {
        self.conn
            .query_row("SELECT outcome FROM replayed WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| format!("replay ledger `{}`: {e}", self.path.display()))
    }

    /// Notes the outcomes of a batch of replayed dead letters, in one
    /// transaction.
    pub fn note(&mut self, outcomes: &[(String, String)]) -> Result<(), String> {
        let fail = |e: rusqlite::Error| format!("replay ledger `{}`: {e}", self.path.display());
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let tx = self.conn.transaction().map_err(fail)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO replayed (id, replayed_at, outcome) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET replayed_at = excluded.replayed_at, outcome = excluded.outcome",
                )
                .map_err(fail)?;
            for (id, outcome) in outcomes {
                stmt.execute([id.as_str(), now.as_str(), outcome.as_str()])
                    .map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_remembers_outcomes_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path(), "p").unwrap();
        assert_eq!(l.outcome("a").unwrap(), None);
        l.note(&[
            ("a".into(), "written".into()),
            ("b".into(), "rejected again: validate: x".into()),
        ])
        .unwrap();
        drop(l);
        let l = Ledger::open(dir.path(), "p").unwrap();
        assert_eq!(l.outcome("a").unwrap().as_deref(), Some("written"));
        assert_eq!(
            l.outcome("b").unwrap().as_deref(),
            Some("rejected again: validate: x")
        );
    }
}
