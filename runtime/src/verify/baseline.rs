//! What the last `verify` established, kept between runs so that the next
//! one re-checks only what changed: `<state_dir>/<pipeline>.verify.json`.
//!
//! For each source table compared by key ranges: the ranges (their bounds
//! are primary-key values, so the file is as private as the data: it is
//! written with mode 0600), and for each range the two sides' checksums
//! when it was last found identical, with its counts. A range whose two
//! checksums are still those is still identical (the same rows on both
//! sides, through the same plugins); any other range is compared again,
//! row by row. What the plugins make of a row is part of the comparison,
//! so the table's entry holds a fingerprint of the plugins, the sink's
//! settings and the source table's columns: when it changes, every range is
//! compared again.
//!
//! The file is rewritten (atomically) every few seconds during a verify and
//! at its end, so an interrupted verify goes on where it was.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Pipeline;
use crate::sources::postgres::catalog::Table;

/// The file's format; another version is ignored (every range re-checked).
const FORMAT: u32 = 1;

/// What a database says of the rows of one side of one range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sum {
    /// Rows in the range.
    pub rows: i64,
    /// A hash over every column of every row in it.
    pub hash: i64,
}

/// The counts of a range found identical.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Source rows.
    pub source_rows: u64,
    /// Rows the target should hold.
    pub expected: u64,
    /// Rows the target holds.
    pub target_rows: u64,
    /// Rows equal on both sides.
    pub matching: u64,
    /// Source rows the plugins reject.
    pub dead_lettered: u64,
    /// Source rows the plugins drop.
    pub dropped: u64,
    /// The range's share of the report's expected checksum (hex).
    pub expected_digest: String,
    /// The range's share of the report's target checksum (hex).
    pub target_digest: String,
}

/// A range found identical, and the checksums its two sides had then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// The source side's checksum.
    pub source: Sum,
    /// The target side's checksum.
    pub target: Sum,
    /// What the comparison counted.
    pub counts: Counts,
}

/// One key range: keys after `after` (excluded) up to `until` (included),
/// as text; `None` is the table's start or end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeState {
    /// The range's lower bound (excluded).
    pub after: Option<Vec<String>>,
    /// The range's upper bound (included).
    pub until: Option<Vec<String>>,
    /// Set when the range was last found identical and stable.
    pub settled: Option<Settled>,
}

/// One source table's ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    /// Plugins, sink settings and source columns when the ranges settled.
    pub fingerprint: String,
    /// The target table.
    pub target: String,
    /// The ranges, in key order, covering the whole key space.
    pub ranges: Vec<RangeState>,
}

/// The whole file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    format: u32,
    /// By source table (its stream name).
    pub tables: BTreeMap<String, TableState>,
    #[serde(skip)]
    path: PathBuf,
}

impl Baseline {
    /// Where `pipeline`'s baseline lives.
    pub fn path_of(pipeline: &Pipeline) -> PathBuf {
        pipeline
            .state_dir
            .join(format!("{}.verify.json", pipeline.name))
    }

    /// Reads the baseline at `path`; an absent, unreadable or other-format
    /// file is an empty baseline (every range is compared).
    pub fn load(path: &Path) -> Baseline {
        let empty = || Baseline {
            format: FORMAT,
            tables: BTreeMap::new(),
            path: path.to_path_buf(),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return empty(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "verify: cannot read the last verify's ranges; comparing every range");
                return empty();
            }
        };
        match serde_json::from_str::<Baseline>(&text) {
            Ok(mut b) if b.format == FORMAT => {
                b.path = path.to_path_buf();
                b
            }
            Ok(_) => empty(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "verify: the last verify's ranges are not readable; comparing every range");
                empty()
            }
        }
    }

    /// Writes the baseline (a new file renamed over the old one, mode 0600).
    pub fn save(&self) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, self)?;
        tmp.flush()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// What the comparison of `table` depends on besides the data: the
/// plugins (their files and settings), the sink's settings, the source
/// table's columns, and this version of Sluice (its canonical values).
pub fn fingerprint(pipeline: &Pipeline, table: &Table) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "sluice {} verify {FORMAT}\n",
        env!("CARGO_PKG_VERSION")
    ));
    for t in &pipeline.config.transforms {
        h.update(format!("transform {} {}\n", t.name, t.config));
        match std::fs::read(&t.plugin) {
            Ok(bytes) => h.update(Sha256::digest(&bytes)),
            // Unreadable: the run itself fails on it; never equal to a
            // stored fingerprint.
            Err(e) => h.update(format!("unreadable {e} {:?}", std::time::SystemTime::now())),
        }
    }
    h.update(format!("sink {:?}\n", pipeline.config.sink));
    for c in &table.columns {
        h.update(format!("column {} {}\n", c.name, c.type_name));
    }
    h.update(format!("key {:?}\n", table.key));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_baseline_reads_back_and_a_broken_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.verify.json");
        let mut b = Baseline::load(&path);
        assert!(b.tables.is_empty());
        b.tables.insert(
            "orders".into(),
            TableState {
                fingerprint: "f".into(),
                target: "public.orders".into(),
                ranges: vec![RangeState {
                    after: None,
                    until: Some(vec!["10".into()]),
                    settled: Some(Settled {
                        source: Sum { rows: 10, hash: -3 },
                        target: Sum { rows: 10, hash: 7 },
                        counts: Counts {
                            source_rows: 10,
                            ..Default::default()
                        },
                    }),
                }],
            },
        );
        b.save().unwrap();
        let again = Baseline::load(&path);
        assert_eq!(again.tables, b.tables);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "{not json").unwrap();
        assert!(Baseline::load(&path).tables.is_empty());
        std::fs::write(&path, r#"{"format": 99, "tables": {"x": {}}}"#).unwrap();
        assert!(Baseline::load(&path).tables.is_empty());
    }
}
