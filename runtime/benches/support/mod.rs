//! What several benches share: the workspace root and their `SLUICE_BENCH_*`
//! settings, building workspace binaries they run as child processes, and
//! generating the legacy CRM export they read.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's root directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("root")
}

/// The number in environment variable `name`, or `default`.
pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Builds `packages` of the workspace at `root` (release, locked) and
/// returns the directory their binaries are in (this bench's target dir).
pub fn build(root: &Path, packages: &[&str]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked"]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let built = cmd.status().expect("cargo build");
    assert!(built.success(), "cargo build failed");
    std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Writes `rows` rows of the legacy CRM export to `out` with the
/// `legacy-crm` binary in `bin` (built by [`build`]); returns what it printed.
pub fn generate_export(bin: &Path, rows: usize, out: &Path) -> String {
    let run = Command::new(bin.join("legacy-crm"))
        .args(["generate", "--rows", &rows.to_string(), "--out"])
        .arg(out)
        .output()
        .expect("legacy-crm generate");
    let text = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "legacy-crm generate failed: {text}");
    text
}
