//! The Rust SDK (`sluice-sdk`) and the batch codec it depends on
//! (`sluice-codec`), compiled into the binary, so that
//! `sluice plugin new --lang rust` and `sluice plugin build` work without a
//! checkout, as they do for Python, JavaScript and C.
//!
//! [`ensure`] writes both crates under `<tools>/sdk/rust-<version>/` as
//! standalone crates: their manifests' `workspace = true` entries are
//! resolved from the workspace manifest this binary was built with, and the
//! WIT package goes inside the SDK (`sluice-sdk/wit/`). A `content` file
//! there holds a digest of what was written; a binary whose SDK differs
//! writes it again (a plugin made by an older `sluice` of the same version
//! then builds against this one's SDK).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml::{Table, Value};

use super::sdk_files::CONNECTOR_WIT;

/// The SDK crate's files (path under the crate, contents).
const SDK: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../sdk/rust/README.md")),
    (
        "src/bindings.rs",
        include_str!("../../../sdk/rust/src/bindings.rs"),
    ),
    (
        "src/config.rs",
        include_str!("../../../sdk/rust/src/config.rs"),
    ),
    (
        "src/connector.rs",
        include_str!("../../../sdk/rust/src/connector.rs"),
    ),
    ("src/http.rs", include_str!("../../../sdk/rust/src/http.rs")),
    ("src/json.rs", include_str!("../../../sdk/rust/src/json.rs")),
    ("src/lib.rs", include_str!("../../../sdk/rust/src/lib.rs")),
    ("src/log.rs", include_str!("../../../sdk/rust/src/log.rs")),
    (
        "src/outcome.rs",
        include_str!("../../../sdk/rust/src/outcome.rs"),
    ),
    (
        "src/record.rs",
        include_str!("../../../sdk/rust/src/record.rs"),
    ),
    ("src/run.rs", include_str!("../../../sdk/rust/src/run.rs")),
];

/// The codec crate's files. Its tests stay behind (they are not built when
/// the crate is a dependency).
const CODEC: &[(&str, &str)] = &[
    ("FORMAT.md", include_str!("../../../codec/FORMAT.md")),
    ("src/json.rs", include_str!("../../../codec/src/json.rs")),
    ("src/lib.rs", include_str!("../../../codec/src/lib.rs")),
    ("src/read.rs", include_str!("../../../codec/src/read.rs")),
    (
        "src/record.rs",
        include_str!("../../../codec/src/record.rs"),
    ),
    ("src/write.rs", include_str!("../../../codec/src/write.rs")),
];

const SDK_MANIFEST: &str = include_str!("../../../sdk/rust/Cargo.toml");
const CODEC_MANIFEST: &str = include_str!("../../../codec/Cargo.toml");
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// The version of the SDK this binary carries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Writes the SDK (if this binary's is not there already) and returns the
/// directory of the `sluice-sdk` crate, for a plugin's `path =` dependency.
pub fn ensure() -> Result<PathBuf, String> {
    ensure_in(&super::tools_dir().join("sdk"))
}

/// [`ensure`] under `root` (`<tools>/sdk`).
pub fn ensure_in(root: &Path) -> Result<PathBuf, String> {
    let files = files()?;
    let digest = content_digest(&files);
    let home = root.join(format!("rust-{VERSION}"));
    let sdk = home.join("sluice-sdk");
    let marker = home.join("content");
    let in_place = || {
        std::fs::read_to_string(&marker).is_ok_and(|d| d.trim() == digest)
            && files.iter().all(|(p, _)| home.join(p).is_file())
    };
    if in_place() {
        return Ok(sdk);
    }
    // Written beside, then swapped in: another `sluice` writing at the same
    // time, or one that died half-way, never leaves a partial SDK in place.
    std::fs::create_dir_all(root)
        .map_err(|e| format!("cannot create `{}`: {e}", root.display()))?;
    let fresh = tempfile::Builder::new()
        .prefix(".rust-sdk-")
        .tempdir_in(root)
        .map_err(|e| format!("cannot write the Rust SDK under `{}`: {e}", root.display()))?;
    for (path, text) in &files {
        let to = fresh.path().join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        }
        std::fs::write(&to, text).map_err(|e| format!("cannot write `{}`: {e}", to.display()))?;
    }
    std::fs::write(fresh.path().join("content"), format!("{digest}\n"))
        .map_err(|e| format!("cannot write the Rust SDK: {e}"))?;
    let fresh = fresh.keep();
    if home.exists() {
        let old = root.join(format!(".rust-{VERSION}-old-{}", std::process::id()));
        std::fs::rename(&home, &old)
            .map_err(|e| format!("cannot replace `{}`: {e}", home.display()))?;
        let _ = std::fs::remove_dir_all(&old);
    }
    if let Err(e) = std::fs::rename(&fresh, &home) {
        let _ = std::fs::remove_dir_all(&fresh);
        // Another process put the same SDK in place first.
        if in_place() {
            return Ok(sdk);
        }
        return Err(format!(
            "cannot put the Rust SDK at `{}`: {e}",
            home.display()
        ));
    }
    tracing::info!(path = %sdk.display(), "wrote the Sluice Rust SDK");
    Ok(sdk)
}

/// Every file to write, as (path under `rust-<version>/`, contents).
fn files() -> Result<Vec<(String, String)>, String> {
    let workspace: Table = WORKSPACE_MANIFEST
        .parse()
        .map_err(|e| format!("the workspace manifest built in: {e}"))?;
    let mut out = Vec::new();
    out.push((
        "sluice-sdk/Cargo.toml".to_string(),
        standalone(SDK_MANIFEST, &workspace)?,
    ));
    out.extend(
        SDK.iter()
            .map(|(p, t)| (format!("sluice-sdk/{p}"), (*t).to_string())),
    );
    out.extend(
        CONNECTOR_WIT
            .iter()
            .map(|(p, t)| (format!("sluice-sdk/wit/{p}"), (*t).to_string())),
    );
    out.push((
        "sluice-codec/Cargo.toml".to_string(),
        standalone(CODEC_MANIFEST, &workspace)?,
    ));
    out.extend(
        CODEC
            .iter()
            .map(|(p, t)| (format!("sluice-codec/{p}"), (*t).to_string())),
    );
    Ok(out)
}

fn content_digest(files: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    for (path, text) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(text.len().to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A member's manifest without the workspace: `x.workspace = true` fields
/// and dependencies take the workspace's values; `sluice-codec` is the
/// crate written beside (`../sluice-codec`); dev-dependencies and lints,
/// which only the workspace's own builds use, are left out.
fn standalone(member: &str, workspace: &Table) -> Result<String, String> {
    let mut m: Table = member
        .parse()
        .map_err(|e| format!("a member manifest built in: {e}"))?;
    let ws = workspace
        .get("workspace")
        .and_then(Value::as_table)
        .ok_or("the workspace manifest has no [workspace]")?;
    let package_defaults = ws.get("package").and_then(Value::as_table);
    let dependency_defaults = ws.get("dependencies").and_then(Value::as_table);
    if let Some(Value::Table(package)) = m.get_mut("package") {
        for (key, value) in package.iter_mut() {
            if inherits(value) {
                *value = package_defaults
                    .and_then(|p| p.get(key))
                    .cloned()
                    .ok_or_else(|| format!("[workspace.package] has no `{key}`"))?;
            }
        }
    }
    m.remove("dev-dependencies");
    m.remove("lints");
    if let Some(Value::Table(deps)) = m.get_mut("dependencies") {
        for (name, dep) in deps.iter_mut() {
            let local = dep.as_table().cloned().unwrap_or_default();
            if !inherits(dep) {
                continue;
            }
            let mut resolved = match dependency_defaults.and_then(|d| d.get(name)) {
                Some(Value::String(version)) => {
                    let mut t = Table::new();
                    t.insert("version".into(), Value::String(version.clone()));
                    t
                }
                Some(Value::Table(t)) => t.clone(),
                _ => return Err(format!("[workspace.dependencies] has no `{name}`")),
            };
            if name == "sluice-codec" {
                resolved.insert("path".into(), Value::String("../sluice-codec".into()));
            } else if resolved.contains_key("path") {
                return Err(format!(
                    "dependency `{name}` is a path in the workspace: it cannot be written out"
                ));
            }
            // Keys given beside `workspace = true` (features, optional).
            for (k, v) in local {
                if k == "workspace" {
                    continue;
                }
                if k == "features"
                    && let (Some(Value::Array(mine)), Some(Value::Array(theirs))) =
                        (Some(&v), resolved.get_mut("features"))
                {
                    theirs.extend(mine.iter().cloned());
                    continue;
                }
                resolved.insert(k, v);
            }
            *dep = Value::Table(resolved);
        }
    }
    Ok(format!(
        "# The Sluice Rust SDK as `sluice {VERSION}` carries it, written by\n# `sluice plugin new`, standalone (shared settings resolved).\n{}",
        toml::to_string(&m).map_err(|e| e.to_string())?
    ))
}

/// `{ workspace = true, ... }` or `x.workspace = true`.
fn inherits(v: &Value) -> bool {
    v.as_table()
        .and_then(|t| t.get("workspace"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn listed(dir: &str) -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(
                        p.strip_prefix(&root)
                            .unwrap()
                            .display()
                            .to_string()
                            .replace('\\', "/"),
                    );
                }
            }
        }
        out.sort();
        out
    }

    /// Every source file of the two crates is carried (a file added to the
    /// SDK and not here would break every plugin made from the binary).
    #[test]
    fn the_binary_carries_every_source_file_of_the_sdk_and_the_codec() {
        let carried = |files: &[(&str, &str)]| {
            let mut v: Vec<String> = files.iter().map(|(p, _)| p.to_string()).collect();
            v.sort();
            v
        };
        let sdk_src: Vec<String> = listed("sdk/rust/src")
            .into_iter()
            .map(|p| format!("src/{p}"))
            .collect();
        let mut want = sdk_src;
        want.push("README.md".into());
        want.sort();
        assert_eq!(carried(SDK), want);
        let codec_src: Vec<String> = listed("codec/src")
            .into_iter()
            .filter(|p| p != "tests.rs" && p != "proptests.rs")
            .map(|p| format!("src/{p}"))
            .collect();
        let mut want = codec_src;
        want.push("FORMAT.md".into());
        want.sort();
        assert_eq!(carried(CODEC), want);
    }

    #[test]
    fn manifests_are_standalone_with_the_workspace_versions() {
        let workspace: Table = WORKSPACE_MANIFEST.parse().unwrap();
        let sdk: Table = standalone(SDK_MANIFEST, &workspace)
            .unwrap()
            .parse()
            .unwrap();
        let text = toml::to_string(&sdk).unwrap();
        assert!(!text.contains("workspace"), "{text}");
        assert_eq!(sdk["package"]["version"].as_str(), Some(VERSION));
        assert_eq!(sdk["package"]["edition"].as_str(), Some("2024"));
        let deps = sdk["dependencies"].as_table().unwrap();
        assert_eq!(
            deps["sluice-codec"]["path"].as_str(),
            Some("../sluice-codec")
        );
        let ws_deps = &workspace["workspace"]["dependencies"];
        for name in ["wit-bindgen", "serde", "serde_json"] {
            let want = match &ws_deps[name] {
                Value::String(v) => v.clone(),
                t => t["version"].as_str().unwrap().to_string(),
            };
            assert_eq!(
                deps[name]["version"].as_str(),
                Some(want.as_str()),
                "{name}"
            );
        }
        assert!(sdk.get("features").is_some());
        let codec: Table = standalone(CODEC_MANIFEST, &workspace)
            .unwrap()
            .parse()
            .unwrap();
        assert!(codec.get("dev-dependencies").is_none());
        assert!(codec.get("lints").is_none());
    }

    #[test]
    fn the_sdk_is_written_once_and_again_when_it_is_damaged() {
        let root = tempfile::tempdir().unwrap();
        let sdk = ensure_in(root.path()).unwrap();
        assert!(sdk.join("Cargo.toml").is_file());
        assert!(sdk.join("wit/plugin.wit").is_file());
        assert!(sdk.join("wit/deps/io/package.wit").is_file());
        assert!(sdk.join("../sluice-codec/src/lib.rs").is_file());
        let lib = sdk.join("src/lib.rs");
        let written = std::fs::metadata(&lib).unwrap().modified().unwrap();
        assert_eq!(ensure_in(root.path()).unwrap(), sdk);
        assert_eq!(
            std::fs::metadata(&lib).unwrap().modified().unwrap(),
            written
        );
        // A file gone: written again.
        std::fs::remove_file(&lib).unwrap();
        assert_eq!(ensure_in(root.path()).unwrap(), sdk);
        assert!(lib.is_file());
        // A different digest (another build's SDK): written again.
        std::fs::write(&lib, "// edited\n").unwrap();
        std::fs::write(sdk.join("../content"), "other\n").unwrap();
        assert_eq!(ensure_in(root.path()).unwrap(), sdk);
        assert_ne!(std::fs::read_to_string(&lib).unwrap(), "// edited\n");
        let names: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [format!("rust-{VERSION}")]);
    }
}
