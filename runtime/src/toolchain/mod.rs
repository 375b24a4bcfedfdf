//! The plugin author's toolchain: detect a plugin's language, build it into
//! a component (`sluice plugin build`), and install the pinned tools each
//! language needs (`sluice plugin setup`).
//!
//! | language | entry file | tool |
//! |---|---|---|
//! | Rust | `Cargo.toml` | cargo, target `wasm32-wasip2` |
//! | Python | `plugin.py` | componentize-py [`COMPONENTIZE_PY`] |
//! | JavaScript | `plugin.js` | componentize-qjs [`COMPONENTIZE_QJS`] (QuickJS) |
//! | C | `plugin.c` | Debian clang-19 + wasi-libc; bindings and component made here |
//!
//! The SDKs of Python, JavaScript and C and the WIT package are compiled
//! into the `sluice` binary and written next to the build, so a plugin needs
//! no checkout of the Sluice tree.

mod c;
mod js;
mod python;
mod rust;
pub mod rust_sdk;
mod sdk_files;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use setup::setup;

/// componentize-py, pinned: the Python plugin builder (PyPI).
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-qjs, pinned: the JavaScript (QuickJS) plugin builder (npm).
pub const COMPONENTIZE_QJS: &str = "0.4.5";
/// The clang that builds C plugins (Debian package `clang-19`).
pub const CLANG: &str = "clang-19";

/// A language plugins can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust, with the `sluice-sdk` crate.
    Rust,
    /// Python, with the `sluice_sdk` package (componentize-py).
    Python,
    /// JavaScript (ES modules), with the `sluice-sdk` module (QuickJS).
    Js,
    /// C, with `sluice.h`.
    C,
}

impl Language {
    /// Every language, in the order the docs list them.
    pub const ALL: [Language; 4] = [Language::Rust, Language::Python, Language::Js, Language::C];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Js => "js",
            Language::C => "c",
        }
    }

    /// The file whose presence makes a directory a plugin of this language.
    pub fn marker(self) -> &'static str {
        match self {
            Language::Rust => "Cargo.toml",
            Language::Python => "plugin.py",
            Language::Js => "plugin.js",
            Language::C => "plugin.c",
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No language could be told from the directory.
    #[error(
        "`{0}` is not a plugin directory: it has none of Cargo.toml (Rust), plugin.py (Python), plugin.js (JavaScript), plugin.c (C)"
    )]
    Unknown(PathBuf),
    /// Markers of several languages.
    #[error("`{dir}` holds plugins of several languages ({found}): pass `--lang`")]
    Ambiguous {
        /// The directory.
        dir: PathBuf,
        /// The markers found.
        found: String,
    },
    /// A tool the language needs is not installed.
    #[error("{tool} is needed to build {lang} plugins and is not installed: run `{install}`")]
    ToolMissing {
        /// The tool.
        tool: String,
        /// The language.
        lang: Language,
        /// The command that installs it.
        install: String,
    },
    /// The tool ran and failed.
    #[error(
        "building the {lang} plugin in `{dir}` failed: `{command}` exited with {status}\n{output}"
    )]
    ToolFailed {
        /// The language.
        lang: Language,
        /// The plugin directory.
        dir: PathBuf,
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (the end of it).
        output: String,
    },
    /// A connector's `connector.toml` is not a valid manifest.
    #[error("`{path}` {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Turning a core module into a component failed (C).
    #[error("making a component of `{module}` failed: {reason}")]
    Componentize {
        /// The core module.
        module: PathBuf,
        /// Why.
        reason: String,
    },
    /// The Rust SDK this binary carries could not be written out.
    #[error("the Sluice Rust SDK: {0}")]
    Sdk(String),
    /// A file could not be read or written.
    #[error("{what} `{path}`: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A component that was built.
#[derive(Debug, Clone)]
pub struct Built {
    /// The language.
    pub lang: Language,
    /// The plugin name.
    pub name: String,
    /// The component file (`DIR/build/NAME.wasm`).
    pub component: PathBuf,
    /// How long the build took.
    pub took: Duration,
}

/// Tells a plugin directory's language from its files.
pub fn detect(dir: &Path) -> Result<Language, BuildError> {
    let found: Vec<Language> = Language::ALL
        .into_iter()
        .filter(|l| dir.join(l.marker()).is_file())
        .collect();
    match found.as_slice() {
        [] => Err(BuildError::Unknown(dir.to_path_buf())),
        [one] => Ok(*one),
        many => Err(BuildError::Ambiguous {
            dir: dir.to_path_buf(),
            found: many
                .iter()
                .map(|l| format!("{} ({l})", l.marker()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The plugin name of a directory: the package name its language's
/// manifest gives (`Cargo.toml`, `package.json`, `pyproject.toml`), else the
/// directory name; as lowercase letters, digits, `-`, `_`.
pub fn plugin_name(dir: &Path, lang: Language) -> String {
    if lang == Language::Rust
        && let Some(name) = rust::package_name(dir)
    {
        return name;
    }
    let declared = match lang {
        Language::Js => std::fs::read_to_string(dir.join("package.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| {
                v["name"]
                    .as_str()
                    .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
            }),
        Language::Python => std::fs::read_to_string(dir.join("pyproject.toml"))
            .ok()
            .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
            .and_then(|t| t.get("project")?.get("name")?.as_str().map(str::to_string)),
        _ => None,
    };
    let base = declared.filter(|n| !n.is_empty()).unwrap_or_else(|| {
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "plugin".into())
    });
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "plugin".into()
    } else {
        name
    }
}

/// Builds the plugin in `dir` (language detected unless given) into
/// `dir/build/NAME.wasm`.
pub fn build(dir: &Path, lang: Option<Language>) -> Result<Built, BuildError> {
    let started = Instant::now();
    let lang = match lang {
        Some(l) => l,
        None => detect(dir)?,
    };
    let name = plugin_name(dir, lang);
    let out_dir = dir.join("build");
    std::fs::create_dir_all(&out_dir).map_err(|source| BuildError::Io {
        what: "cannot create",
        path: out_dir.clone(),
        source,
    })?;
    let component = out_dir.join(format!("{name}.wasm"));
    let _span = tracing::info_span!("plugin_build", %lang, plugin = %name).entered();
    match lang {
        Language::Rust => rust::build(dir, &component)?,
        Language::Python => python::build(dir, &component)?,
        Language::Js => js::build(dir, &component)?,
        Language::C => c::build(dir, &component)?,
    }
    embed_manifest(dir, &component)?;
    Ok(Built {
        lang,
        name,
        component,
        took: started.elapsed(),
    })
}

/// A connector's manifest file, next to its sources.
pub const MANIFEST_FILE: &str = "connector.toml";

/// The kind a plugin directory's `connector.toml` declares (`None`: a
/// transform).
pub(crate) fn connector_kind(dir: &Path) -> Result<Option<crate::connector::Kind>, BuildError> {
    let path = dir.join(MANIFEST_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let m = crate::connector::package::Manifest::parse(&text)
        .map_err(|reason| BuildError::Manifest { path, reason })?;
    Ok(Some(if m.kind == "sink" {
        crate::connector::Kind::Sink
    } else {
        crate::connector::Kind::Source
    }))
}

/// Puts `dir/connector.toml` (a connector's manifest) inside the component.
fn embed_manifest(dir: &Path, component: &Path) -> Result<(), BuildError> {
    let manifest = dir.join(MANIFEST_FILE);
    if !manifest.is_file() {
        return Ok(());
    }
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { what, path, source }
    };
    let text = std::fs::read_to_string(&manifest).map_err(io("cannot read", &manifest))?;
    let bytes = std::fs::read(component).map_err(io("cannot read", component))?;
    let out = crate::connector::package::with_manifest(&bytes, &text).map_err(|reason| {
        BuildError::Manifest {
            path: manifest.clone(),
            reason,
        }
    })?;
    std::fs::write(component, out).map_err(io("cannot write", component))
}

/// The directory of installed tools: `$SLUICE_TOOLS`, else
/// `~/.cache/sluice/tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SLUICE_TOOLS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/sluice/tools")
}

/// Finds `program`: first in the tools directory (`sub`), then on PATH.
fn find_tool(sub: &str, program: &str) -> Option<PathBuf> {
    let local = tools_dir().join(sub).join(program);
    if local.is_file() {
        return Some(local);
    }
    which::which(program).ok()
}

/// Writes `files` (relative path, contents) under `root`.
fn write_files(root: &Path, files: &[(&str, &str)]) -> Result<(), BuildError> {
    for (rel, text) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| BuildError::Io {
                what: "cannot create",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        write_if_changed(&path, text.as_bytes())?;
    }
    Ok(())
}

/// Writes a file unless it already holds `bytes` (keeps mtimes stable).
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|source| BuildError::Io {
        what: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

/// Runs a build tool; a failure carries the command and the end of its output.
fn run_tool(lang: Language, dir: &Path, cmd: &mut Command) -> Result<(), BuildError> {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    tracing::debug!(%command, "running");
    // Tools written in Rust (componentize-py, componentize-qjs) would follow
    // their error with a backtrace of their own, which buries the message.
    cmd.env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0");
    let out = cmd.output().map_err(|source| BuildError::Io {
        what: "cannot run",
        path: PathBuf::from(cmd.get_program()),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if let Some(i) = text.find("Stack backtrace:") {
        text.truncate(i);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    Err(BuildError::ToolFailed {
        lang,
        dir: dir.to_path_buf(),
        command,
        status: out.status.to_string(),
        output: tail,
    })
}

#[cfg(test)]
mod tests;
