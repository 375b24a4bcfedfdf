//! One run per pipeline state: two runs of one pipeline would read the
//! same checkpoint and write the same records twice. A run holds an OS
//! lock on `STATE_DIR/PIPELINE.lock` (released when the process ends, even
//! by `kill -9`) and writes its pid there, so that a second run can say who
//! holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock of a running pipeline; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// Takes the lock of pipeline `name` in `state_dir`, or says which process
/// holds it.
pub fn acquire(state_dir: &Path, name: &str) -> Result<RunLock, String> {
    std::fs::create_dir_all(state_dir).map_err(|e| {
        format!(
            "cannot create the state directory `{}`: {e}",
            state_dir.display()
        )
    })?;
    let path = state_dir.join(format!("{name}.lock"));
    let cannot = |e: std::io::Error| format!("cannot lock `{}`: {e}", path.display());
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(cannot)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("process {holder}")
            };
            return Err(format!(
                "pipeline `{name}` is already running ({who} holds `{}`): two runs of one pipeline would write records twice; stop it first, or give this run another `runtime.state_dir`",
                path.display()
            ));
        }
        Err(TryLockError::Error(e)) => return Err(cannot(e)),
    }
    file.set_len(0).map_err(cannot)?;
    file.rewind().map_err(cannot)?;
    write!(file, "{}", std::process::id()).map_err(cannot)?;
    Ok(RunLock { _file: file, path })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_of_the_same_pipeline_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "p").unwrap();
        let e = acquire(dir.path(), "p").unwrap_err();
        assert!(
            e.contains("already running") && e.contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        // Another pipeline in the same state directory is fine.
        let _other = acquire(dir.path(), "q").unwrap();
        drop(first);
        acquire(dir.path(), "p").unwrap();
    }
}
