//! Rust plugins: `cargo build --release --target wasm32-wasip2`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BuildError, Language};

/// The `[package] name` of `dir/Cargo.toml`.
pub(super) fn package_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table
        .get("package")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

fn target_installed() -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .is_dir()
}

pub(super) fn build(dir: &Path, component: &Path) -> Result<(), BuildError> {
    if which::which("cargo").is_err() {
        return Err(BuildError::ToolMissing {
            tool: "cargo".into(),
            lang: Language::Rust,
            install: "curl https://sh.rustup.rs -sSf | sh".into(),
        });
    }
    if !target_installed() {
        return Err(BuildError::ToolMissing {
            tool: "the Rust target wasm32-wasip2".into(),
            lang: Language::Rust,
            install: "rustup target add wasm32-wasip2".into(),
        });
    }
    let manifest = dir.join("Cargo.toml");
    // A plugin made by `sluice plugin new` depends on the SDK this binary
    // writes out: put it (back) in place if the tools directory lost it.
    let sdk_home = super::tools_dir().join("sdk");
    if std::fs::read_to_string(&manifest)
        .is_ok_and(|m| m.contains(&sdk_home.display().to_string().replace('\\', "/")))
    {
        super::rust_sdk::ensure().map_err(BuildError::Sdk)?;
    }
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest);
    let command = format!(
        "cargo build --release --target wasm32-wasip2 --manifest-path {}",
        manifest.display()
    );
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| BuildError::Io {
            what: "cannot run",
            path: "cargo".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(BuildError::ToolFailed {
            lang: Language::Rust,
            dir: dir.to_path_buf(),
            command,
            status: out.status.to_string(),
            output: "(cargo's errors are above)".into(),
        });
    }
    let wasm = artifact(&out.stdout).ok_or_else(|| BuildError::ToolFailed {
        lang: Language::Rust,
        dir: dir.to_path_buf(),
        command,
        status: "success".into(),
        output: "cargo built no `.wasm` file: the crate needs `[lib] crate-type = [\"cdylib\"]`"
            .into(),
    })?;
    std::fs::copy(&wasm, component).map_err(|source| BuildError::Io {
        what: "cannot copy the component to",
        path: component.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// The last `.wasm` file cargo reports as built for the root package.
pub(super) fn artifact(messages: &[u8]) -> Option<PathBuf> {
    let mut found = None;
    for line in messages.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(files) = msg["filenames"].as_array() {
            for f in files.iter().filter_map(|f| f.as_str()) {
                if f.ends_with(".wasm") {
                    found = Some(PathBuf::from(f));
                }
            }
        }
    }
    found
}
