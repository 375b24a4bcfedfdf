//! Rows on disk, in buckets by a hash of their key, so that `verify` holds
//! one bucket of each side in memory at a time.
//!
//! Each side of a table (the expected rows, the target rows) goes to
//! [`BUCKETS`] files as JSON lines `[key, row]`. Equal keys land in the
//! bucket of the same number on both sides, so buckets are compared pair
//! by pair. A pair larger than [`IN_MEMORY_BYTES`] is split again into
//! [`BUCKETS`] files with a hash of the next level, so memory stays bounded
//! however large the tables (and however unevenly the keys hash).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A row's key: the canonical texts of its key columns.
pub type Key = Vec<Option<String>>;
/// A row: canonical values by column.
pub type Row = BTreeMap<String, Option<String>>;

/// Files per side and level.
pub const BUCKETS: usize = 16;
/// A bucket pair at most this large (bytes on disk, both sides) is compared
/// in memory; a larger one is split again.
pub const IN_MEMORY_BYTES: u64 = 32 << 20;
/// Levels of splitting at most (16^5 buckets: a bucket still too large
/// after that holds one key's rows many times over, and is read as is).
const MAX_LEVEL: u32 = 5;

/// A name usable in a file name.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn bucket(key: &Key, level: u32) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    level.hash(&mut h);
    key.hash(&mut h);
    (h.finish() % BUCKETS as u64) as usize
}

/// One side of a table being written to its bucket files.
pub struct Spill {
    paths: Vec<PathBuf>,
    files: Vec<BufWriter<File>>,
    level: u32,
}

impl Spill {
    /// Creates the bucket files `NAME-0` … in `dir`.
    pub fn new(dir: &Path, name: &str) -> io::Result<Self> {
        Self::at_level(dir, name, 0)
    }

    fn at_level(dir: &Path, name: &str, level: u32) -> io::Result<Self> {
        let mut paths = Vec::with_capacity(BUCKETS);
        let mut files = Vec::with_capacity(BUCKETS);
        for i in 0..BUCKETS {
            let p = dir.join(format!("{name}-{i}"));
            files.push(BufWriter::with_capacity(32 << 10, File::create(&p)?));
            paths.push(p);
        }
        Ok(Spill {
            paths,
            files,
            level,
        })
    }

    /// Adds a row.
    pub fn push(&mut self, key: &Key, row: &Row) -> io::Result<()> {
        let f = &mut self.files[bucket(key, self.level)];
        serde_json::to_writer(&mut *f, &(key, row))?;
        f.write_all(b"\n")
    }

    /// Flushes and closes the files; returns their paths in bucket order.
    pub fn finish(self) -> io::Result<Vec<PathBuf>> {
        for mut f in self.files {
            f.flush()?;
        }
        Ok(self.paths)
    }
}

fn read_rows(path: &Path, mut each: impl FnMut(Key, Row)) -> io::Result<()> {
    for line in BufReader::new(File::open(path)?).lines() {
        let (key, row): (Key, Row) = serde_json::from_str(&line?)?;
        each(key, row);
    }
    Ok(())
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Compares the bucket `expected` with the bucket `target` (same number,
/// same level): `compare` gets both as maps (a later row of a key wins),
/// or, for a pair larger than `limit` bytes ([`IN_MEMORY_BYTES`]), is
/// called once per pair of the split. The
/// files are removed once compared.
pub fn compare_bucket(
    expected: PathBuf,
    target: PathBuf,
    level: u32,
    limit: u64,
    compare: &mut dyn FnMut(HashMap<Key, Row>, HashMap<Key, Row>),
) -> io::Result<()> {
    if size(&expected) + size(&target) > limit && level < MAX_LEVEL {
        let dir = expected.parent().unwrap_or(Path::new("."));
        let split = |path: &Path, side: &str| -> io::Result<Vec<PathBuf>> {
            let name = format!(
                "{}-{side}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("bucket")
            );
            let mut out = Spill::at_level(dir, &name, level + 1)?;
            let mut failed = None;
            read_rows(path, |k, r| {
                if failed.is_none()
                    && let Err(e) = out.push(&k, &r)
                {
                    failed = Some(e);
                }
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            std::fs::remove_file(path)?;
            out.finish()
        };
        let e = split(&expected, "e")?;
        let t = split(&target, "t")?;
        for (e, t) in e.into_iter().zip(t) {
            compare_bucket(e, t, level + 1, limit, compare)?;
        }
        return Ok(());
    }
    let mut want = HashMap::new();
    read_rows(&expected, |k, r| {
        want.insert(k, r);
    })?;
    let mut got = HashMap::new();
    read_rows(&target, |k, r| {
        got.insert(k, r);
    })?;
    std::fs::remove_file(&expected)?;
    std::fs::remove_file(&target)?;
    compare(want, got);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(v: &str) -> Row {
        [("v".to_string(), Some(v.to_string()))]
            .into_iter()
            .collect()
    }

    #[test]
    fn every_key_meets_its_counterpart_even_when_buckets_are_split_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Spill::new(dir.path(), "e").unwrap();
        let mut t = Spill::new(dir.path(), "t").unwrap();
        let pad = "x".repeat(100);
        let n = 12_000u64;
        for i in 0..n {
            let k: Key = vec![Some(i.to_string())];
            e.push(&k, &row(&format!("{i}{pad}"))).unwrap();
            if i % 1000 != 0 {
                t.push(&k, &row(&format!("{i}{pad}"))).unwrap();
            }
        }
        // A later expected row of a key wins.
        e.push(&vec![Some("5".into())], &row("later")).unwrap();
        let (mut matched, mut missing, mut differ, mut calls) = (0u64, 0u64, 0u64, 0u64);
        for (e, t) in e.finish().unwrap().into_iter().zip(t.finish().unwrap()) {
            // A small limit: the pairs are split, some twice.
            compare_bucket(e, t, 0, 16 << 10, &mut |want, got| {
                calls += 1;
                for (k, r) in &want {
                    match got.get(k) {
                        None => missing += 1,
                        Some(g) if g == r => matched += 1,
                        Some(_) => differ += 1,
                    }
                }
            })
            .unwrap();
        }
        assert_eq!((matched, missing, differ), (n - 13, 12, 1));
        assert!(calls > BUCKETS as u64, "the buckets were split: {calls}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
