//! Hot swap of connectors: noticing a new version of the component file.
//!
//! A source swaps between two polls: the new version is loaded, checked
//! (manifest, signature, grants) and opened at the last position handed
//! over; a sink swaps between two batches (each batch is a commit
//! boundary). A candidate that fails any step is refused and the live
//! version goes on; the same file is not tried again until it changes.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// How often the file is looked at.
const EVERY: Duration = Duration::from_millis(500);

/// The last seen stamp of a component file.
#[derive(Debug)]
pub(crate) struct FileWatch {
    seen: Option<(SystemTime, u64)>,
    checked: Instant,
}

impl FileWatch {
    pub(crate) fn new(stamp: Option<(SystemTime, u64)>) -> Self {
        FileWatch {
            seen: stamp,
            checked: Instant::now(),
        }
    }

    /// True once per change of the file (checked at most every 500 ms).
    pub(crate) fn changed(&mut self, path: &Path) -> bool {
        if self.checked.elapsed() < EVERY {
            return false;
        }
        self.checked = Instant::now();
        let now = super::host::file_stamp(path);
        if now.is_none() || now == self.seen {
            return false;
        }
        self.seen = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_reported_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("c.wasm");
        std::fs::write(&f, b"one").expect("write");
        let mut w = FileWatch::new(super::super::host::file_stamp(&f));
        w.checked -= EVERY;
        assert!(!w.changed(&f));
        std::fs::write(&f, b"two!").expect("write");
        w.checked -= EVERY;
        assert!(w.changed(&f));
        w.checked -= EVERY;
        assert!(!w.changed(&f));
        // Removed: nothing to swap to.
        std::fs::remove_file(&f).expect("rm");
        w.checked -= EVERY;
        assert!(!w.changed(&f));
    }
}
