//! The pipeline file: parsing, `${ENV}` interpolation, path resolution and
//! errors that point at the file, line and column.

mod interpolate;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use interpolate::{MissingVar, interpolate};

use crate::plugin::{Grants, Limits};
use crate::sinks::SinkConfig;
use crate::sources::SourceConfig;

/// A pipeline file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read pipeline file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `${VAR}` names a variable that is not set.
    #[error(
        "{path}:{line}:{column}: environment variable `{name}` is not set (use `${{{name}:-default}}` for a default)"
    )]
    MissingVar {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The variable.
        name: String,
    },
    /// The TOML is invalid or does not match the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("{path}: {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// A whole pipeline: one source, a chain of transforms, a sink, a
/// dead-letter sink and runtime settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The pipeline's name: keys its checkpoint. Defaults to the file name
    /// without extension.
    pub name: Option<String>,
    /// Where records come from.
    pub source: SourceConfig,
    /// The transform plugins, applied in order.
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
    /// Where records go.
    pub sink: SinkConfig,
    /// Where records that cannot be processed go, with the reason. Defaults
    /// to a JSONL file `<state_dir>/<name>.dead_letter.jsonl`.
    pub dead_letter: Option<SinkConfig>,
    /// Batch sizes, limits, directories.
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

/// One transform in the chain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// A name for logs, metrics and dead letters (unique in the pipeline).
    pub name: String,
    /// Path to the plugin component (`.wasm`), relative to the pipeline file.
    pub plugin: PathBuf,
    /// The plugin's own configuration, passed to its `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Capabilities granted to this plugin (all denied by default).
    #[serde(default)]
    pub grants: Grants,
    /// Overrides of the `[runtime]` limits for this plugin.
    #[serde(default)]
    pub limits: LimitsOverride,
    /// Canary records: `{ input = "canary/in.jsonl", expect =
    /// "canary/expected.jsonl" }`. Every version, at start and on each
    /// reload, must give exactly these outcomes (the `sluice plugin test`
    /// format) before it goes live.
    pub canary: Option<crate::plugin::golden::Canary>,
    /// A candidate to run in shadow of this transform: on the same batches,
    /// outcomes compared and reported, never written.
    pub shadow: Option<ShadowConfig>,
}

/// `[transforms.shadow]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// The candidate component, relative to the pipeline file.
    pub plugin: PathBuf,
    /// Its config (default: the transform's config).
    pub config: Option<toml::Table>,
    /// Promote it automatically after this many compared records...
    pub promote_after: Option<u64>,
    /// ...if at most this fraction of them differed (default 0: none).
    #[serde(default)]
    pub max_difference: f64,
}

/// Per-transform overrides of the runtime limits.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    /// Memory cap of one instance, in MiB.
    pub memory_limit_mib: Option<u64>,
    /// CPU deadline for one batch, in milliseconds.
    pub batch_timeout_ms: Option<u64>,
}

/// `[runtime]`: batch sizes, limits and directories.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Most records per batch (default 256).
    pub batch_size: usize,
    /// Most encoded bytes per batch (default 1 MiB); a batch closes at
    /// whichever limit comes first.
    pub batch_bytes: usize,
    /// Batches buffered between stages (default 4). Bounds memory: a slow
    /// sink slows the source.
    pub channel_capacity: usize,
    /// Memory cap of one plugin instance, in MiB (default 64).
    pub memory_limit_mib: u64,
    /// CPU deadline for one batch in one plugin, in milliseconds (default 5000).
    pub batch_timeout_ms: u64,
    /// Log lines a plugin may write per batch before the rest are dropped
    /// and counted (default 100).
    pub log_lines_per_batch: u32,
    /// Checkpoints and the default dead-letter file (default `.sluice`
    /// beside the pipeline file).
    pub state_dir: Option<PathBuf>,
    /// Precompiled plugins, keyed by content hash (default
    /// `$SLUICE_CACHE_DIR`, else `<state_dir>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// Watch the plugin files and the pipeline file and reload changed
    /// transforms while running (default true). SIGHUP reloads either way.
    pub watch: bool,
    /// Serve the admin API (status, metrics, reload, rollback, pause) on
    /// this address, e.g. `"127.0.0.1:9464"` (default: off; `sluice run
    /// --admin ADDR` also turns it on).
    pub admin: Option<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            batch_size: 256,
            batch_bytes: 1 << 20,
            channel_capacity: 4,
            memory_limit_mib: 64,
            batch_timeout_ms: 5000,
            log_lines_per_batch: 100,
            state_dir: None,
            cache_dir: None,
            watch: true,
            admin: None,
        }
    }
}

impl RuntimeConfig {
    /// The limits of a transform: these settings with its overrides.
    pub fn limits_for(&self, t: &TransformConfig) -> Limits {
        Limits {
            memory_bytes: t.limits.memory_limit_mib.unwrap_or(self.memory_limit_mib) << 20,
            batch_timeout: std::time::Duration::from_millis(
                t.limits.batch_timeout_ms.unwrap_or(self.batch_timeout_ms),
            ),
            log_lines_per_batch: self.log_lines_per_batch,
        }
    }
}

/// A parsed pipeline file with paths resolved against its directory.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file it was read from.
    pub path: PathBuf,
    /// The pipeline's name.
    pub name: String,
    /// The configuration, paths absolute.
    pub config: PipelineConfig,
    /// Where checkpoints live.
    pub state_dir: PathBuf,
    /// Where precompiled plugins live.
    pub cache_dir: PathBuf,
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

/// Errors inside tagged tables (`[source]`, `[sink]`) carry the span of the
/// whole table; point at the offending key when the message names one.
fn refine_span(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let key = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `").map(|_| ""))
        .and_then(|rest| rest.split('`').next())
        .filter(|k| !k.is_empty());
    let Some(key) = key else { return span.start };
    // The span may cover only the table header: search the table's body,
    // up to the next header.
    let mut offset = span.start;
    for (i, line) in text[span.start..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if i > 0 && trimmed.starts_with('[') {
            break;
        }
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return offset + (line.len() - trimmed.len());
        }
        offset += line.len();
    }
    span.start
}

/// Resolves `p` against `base` unless it is absolute, and removes `.` and
/// `..` components lexically so that messages show plain paths.
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl Pipeline {
    /// Reads, interpolates, parses and checks a pipeline file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, |name| std::env::var(name).ok())
    }

    /// Parses pipeline text as if read from `path`, with `env` for `${VAR}`.
    pub fn parse(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = interpolate(text, env).map_err(|m| {
            let (line, column) = line_col(text, m.offset);
            ConfigError::MissingVar {
                path: path.to_path_buf(),
                line,
                column,
                name: m.name,
            }
        })?;
        let mut config: PipelineConfig = toml::from_str(&text).map_err(|e| {
            let offset = e.span().map_or(0, |s| refine_span(&text, s, e.message()));
            let (line, column) = line_col(&text, offset);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = std::path::absolute(&base).unwrap_or(base);
        let value_err = |message: String| ConfigError::Value {
            path: path.to_path_buf(),
            message,
        };
        let name = match &config.name {
            Some(n) => n.clone(),
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "pipeline".into()),
        };
        if name.is_empty() {
            return Err(value_err("`name` must not be empty".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &mut config.transforms {
            if !seen.insert(t.name.clone()) {
                return Err(value_err(format!(
                    "two transforms are named `{}`: names must be unique",
                    t.name
                )));
            }
            t.plugin = resolve(&base, &t.plugin);
            if let Some(s) = &mut t.shadow {
                s.plugin = resolve(&base, &s.plugin);
                if !(0.0..=1.0).contains(&s.max_difference) {
                    return Err(value_err(format!(
                        "transform `{}`: `shadow.max_difference` must be between 0 and 1",
                        t.name
                    )));
                }
            }
            if let Some(c) = &mut t.canary {
                c.input = resolve(&base, &c.input);
                c.expect = resolve(&base, &c.expect);
            }
            t.grants.resolve_paths(&base);
        }
        let rt = &config.runtime;
        if rt.batch_size == 0 {
            return Err(value_err("`runtime.batch_size` must be at least 1".into()));
        }
        if rt.batch_bytes < 1024 {
            return Err(value_err(
                "`runtime.batch_bytes` must be at least 1024".into(),
            ));
        }
        if rt.channel_capacity == 0 {
            return Err(value_err(
                "`runtime.channel_capacity` must be at least 1".into(),
            ));
        }
        if rt.memory_limit_mib == 0 || rt.batch_timeout_ms == 0 {
            return Err(value_err(
                "`runtime.memory_limit_mib` and `runtime.batch_timeout_ms` must be positive".into(),
            ));
        }
        config.source.resolve_paths(&base);
        config.sink.resolve_paths(&base);
        if let Some(d) = &mut config.dead_letter {
            d.resolve_paths(&base);
            d.default_to_dead_letters();
        }
        let state_dir = match &config.runtime.state_dir {
            Some(d) => resolve(&base, d),
            None => base.join(".sluice"),
        };
        let cache_dir = match (
            &config.runtime.cache_dir,
            std::env::var_os("SLUICE_CACHE_DIR"),
        ) {
            (Some(d), _) => resolve(&base, d),
            (None, Some(env)) => PathBuf::from(env),
            (None, None) => state_dir.join("cache"),
        };
        config.source.apply_defaults(&name);
        if let crate::sources::SourceConfig::Wasm(c) = &mut config.source {
            c.cache_dir = Some(cache_dir.clone());
        }
        if let crate::sinks::SinkConfig::Wasm(c) = &mut config.sink {
            c.cache_dir = Some(cache_dir.clone());
        }
        if config.source.is_change_stream() {
            config.sink.default_to_metadata();
        }
        Ok(Pipeline {
            path: path.to_path_buf(),
            name,
            config,
            state_dir,
            cache_dir,
        })
    }
}

/// Converts a TOML table (a plugin's `config`) to JSON text for `init`.
pub fn toml_to_json(table: &toml::Table) -> String {
    fn conv(v: &toml::Value) -> serde_json::Value {
        match v {
            toml::Value::String(s) => serde_json::Value::String(s.clone()),
            toml::Value::Integer(i) => serde_json::Value::from(*i),
            toml::Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
            toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
            toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(conv).collect()),
            toml::Value::Table(t) => {
                serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), conv(v))).collect())
            }
        }
    }
    serde_json::Value::Object(table.iter().map(|(k, v)| (k.clone(), conv(v))).collect()).to_string()
}

#[cfg(test)]
mod tests;
