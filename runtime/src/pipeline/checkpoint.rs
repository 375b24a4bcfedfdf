//! The checkpoint store: per pipeline, the source position after the last
//! committed batch and the sinks' states, in a SQLite file in the state dir.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

/// What is saved after each committed batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The source's resume token.
    pub source: String,
    /// The sink's state.
    pub sink: Option<String>,
    /// The dead-letter sink's state.
    pub dead_letter: Option<String>,
    /// Source records committed so far (all runs).
    pub records: u64,
}

/// The checkpoint store failed.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint store `{path}`: {message}")]
pub struct CheckpointError {
    /// The store file.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

/// A SQLite-backed checkpoint store.
pub struct Checkpoints {
    conn: Connection,
    path: PathBuf,
}

impl Checkpoints {
    /// Opens (or creates) the store in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, CheckpointError> {
        let path = state_dir.join("checkpoints.db");
        let err = |m: String| CheckpointError {
            path: path.clone(),
            message: m,
        };
        std::fs::create_dir_all(state_dir)
            .map_err(|e| err(format!("cannot create the directory: {e}")))?;
        let conn = Connection::open(&path).map_err(|e| err(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS checkpoints (
                 pipeline TEXT PRIMARY KEY, source TEXT NOT NULL, sink TEXT, dead_letter TEXT,
                 records INTEGER NOT NULL, updated_at TEXT NOT NULL)",
        )
        .map_err(|e| err(e.to_string()))?;
        Ok(Checkpoints { conn, path })
    }

    fn err(&self, e: rusqlite::Error) -> CheckpointError {
        CheckpointError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The checkpoint of `pipeline`, if any.
    pub fn load(&self, pipeline: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        self.conn
            .query_row(
                "SELECT source, sink, dead_letter, records FROM checkpoints WHERE pipeline = ?1",
                [pipeline],
                |r| {
                    Ok(Checkpoint {
                        source: r.get(0)?,
                        sink: r.get(1)?,
                        dead_letter: r.get(2)?,
                        records: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Saves the checkpoint of `pipeline`.
    pub fn save(&self, pipeline: &str, c: &Checkpoint) -> Result<(), CheckpointError> {
        self.conn
            .prepare_cached(
                "INSERT INTO checkpoints (pipeline, source, sink, dead_letter, records, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                 ON CONFLICT (pipeline) DO UPDATE SET source = excluded.source, sink = excluded.sink,
                 dead_letter = excluded.dead_letter, records = excluded.records, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(rusqlite::params![pipeline, c.source, c.sink, c.dead_letter, c.records as i64]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Forgets the checkpoint of `pipeline` (the next run starts over).
    pub fn reset(&self, pipeline: &str) -> Result<(), CheckpointError> {
        self.conn
            .execute("DELETE FROM checkpoints WHERE pipeline = ?1", [pipeline])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_resets() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Checkpoints::open(&dir.path().join("state")).expect("open");
        assert_eq!(store.load("p").expect("load"), None);
        let c = Checkpoint {
            source: "byte=10".into(),
            sink: Some("bytes=5".into()),
            dead_letter: None,
            records: 3,
        };
        store.save("p", &c).expect("save");
        store.save("other", &Checkpoint::default()).expect("save");
        let again = Checkpoints::open(&dir.path().join("state")).expect("reopen");
        assert_eq!(again.load("p").expect("load"), Some(c));
        again.reset("p").expect("reset");
        assert_eq!(again.load("p").expect("load"), None);
        assert!(again.load("other").expect("load").is_some());
    }
}
