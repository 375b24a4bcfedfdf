//! Connector plugins: sources and sinks shipped as WebAssembly components
//! (`wit/connector.wit`), run in the same sandbox as transforms, with the
//! capabilities the pipeline grants them and nothing else.
//!
//! A connector is configured as `[source] type = "wasm"` or
//! `[sink] type = "wasm"`; [`source::WasmSource`] and [`sink::WasmSink`]
//! implement the built-in [`crate::sources::Source`] and
//! [`crate::sinks::Sink`] traits on top of the component, so the pipeline
//! treats them like any other connector.

pub mod bindings;
pub mod grants;
pub mod host;
pub mod http;
mod http_client;
mod json;
pub mod package;
pub mod pool;
mod retry;
pub mod sink;
pub mod source;
pub mod status;
mod swap;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use grants::ConnectorGrants;
pub use host::ConnectorHost;

/// Which side of the pipeline a connector sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reads records (`source-connector` world).
    Source,
    /// Writes records (`sink-connector` world).
    Sink,
}

impl Kind {
    /// `source` or `sink`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Sink => "sink",
        }
    }
}

/// `[source]` or `[sink]` with `type = "wasm"`: a connector component.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// The component (`.wasm`), relative to the pipeline file.
    pub path: PathBuf,
    /// Name in logs and dead letters (default: the file name without `.wasm`).
    pub name: Option<String>,
    /// The connector's own configuration, handed to `open` as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// What the connector may reach (denied unless listed).
    #[serde(default)]
    pub grants: ConnectorGrants,
    /// Resource limits, timeouts and retries.
    #[serde(default)]
    pub limits: ConnectorLimits,
    /// Accept the component only with a valid signature (`FILE.sig`) by one
    /// of these ed25519 public keys (base64 or `file:PATH`); `sluice plugin
    /// sign` makes signatures. Empty: unsigned components are accepted.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// Faults the host injects into the connector's HTTP requests: for the
    /// conformance kit, never for production.
    #[serde(default)]
    pub chaos: Option<http::Chaos>,
    /// The pipeline file's directory (set when the pipeline is read).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where precompiled components are kept (set when the pipeline is read).
    #[serde(skip)]
    pub cache_dir: Option<PathBuf>,
}

impl ConnectorConfig {
    /// The connector's name.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "connector".into())
        })
    }

    /// The `config` table as JSON text.
    pub fn config_json(&self) -> String {
        crate::config::toml_to_json(&self.config)
    }

    /// Resolves paths against the pipeline file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.path = crate::config::resolve(base, &self.path);
        self.grants.resolve_paths(base);
        self.base_dir = base.to_path_buf();
    }
}

/// `[source.limits]` / `[sink.limits]` of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorLimits {
    /// Largest memory of an instance, in MiB (default 128).
    #[serde(default = "d_memory")]
    pub memory_mb: u64,
    /// Longest one call (`open`, `poll`, `write`, `commit`) may run, in
    /// milliseconds (default 60 000). A call past it is stopped, the
    /// instance thrown away.
    #[serde(default = "d_call")]
    pub call_timeout_ms: u64,
    /// Bound on connecting, on the first response byte and between bytes
    /// of one HTTP request, in milliseconds (default 30 000).
    #[serde(default = "d_request")]
    pub request_timeout_ms: u64,
    /// Outgoing HTTP requests per second (default 0: unlimited).
    #[serde(default)]
    pub requests_per_second: f64,
    /// Transient errors in a row before the pipeline stops (default 0:
    /// retry without end, the status shows the retries).
    #[serde(default)]
    pub max_retries: u32,
    /// First wait after a transient error, in milliseconds (default 200);
    /// doubled after each, up to `retry_max_ms` (default 30 000).
    #[serde(default = "d_retry_initial")]
    pub retry_initial_ms: u64,
    /// Longest wait between retries, in milliseconds.
    #[serde(default = "d_retry_max")]
    pub retry_max_ms: u64,
    /// Crashes (trap, deadline, memory cap) in a row before the pipeline
    /// stops (default 3); each crash starts a fresh instance.
    #[serde(default = "d_crashes")]
    pub max_crashes: u32,
    /// Sources: how long one `poll` may wait for records, in milliseconds
    /// (default 500).
    #[serde(default = "d_poll_wait")]
    pub poll_wait_ms: u32,
    /// Log lines per call before the rest are dropped (default 100).
    #[serde(default = "d_log")]
    pub log_lines_per_call: u32,
}

fn d_memory() -> u64 {
    128
}
fn d_call() -> u64 {
    60_000
}
fn d_request() -> u64 {
    30_000
}
fn d_retry_initial() -> u64 {
    200
}
fn d_retry_max() -> u64 {
    30_000
}
fn d_crashes() -> u32 {
    3
}
fn d_poll_wait() -> u32 {
    500
}
fn d_log() -> u32 {
    100
}

impl Default for ConnectorLimits {
    fn default() -> Self {
        ConnectorLimits {
            memory_mb: d_memory(),
            call_timeout_ms: d_call(),
            request_timeout_ms: d_request(),
            requests_per_second: 0.0,
            max_retries: 0,
            retry_initial_ms: d_retry_initial(),
            retry_max_ms: d_retry_max(),
            max_crashes: d_crashes(),
            poll_wait_ms: d_poll_wait(),
            log_lines_per_call: d_log(),
        }
    }
}

impl ConnectorLimits {
    /// The sandbox limits of one instance.
    pub fn sandbox(&self) -> crate::plugin::Limits {
        crate::plugin::Limits {
            memory_bytes: self.memory_mb << 20,
            batch_timeout: Duration::from_millis(self.call_timeout_ms),
            log_lines_per_batch: self.log_lines_per_call,
        }
    }
}

/// A connector that cannot start or must stop.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The component cannot be used (file, world, manifest, signature, grants).
    #[error("{who}: `{path}` {message}")]
    Load {
        /// `source connector NAME`.
        who: String,
        /// The component file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The connector failed while running.
    #[error("{who}: {message}")]
    Failed {
        /// `source connector NAME (VERSION)`.
        who: String,
        /// What it did.
        message: String,
    },
}
