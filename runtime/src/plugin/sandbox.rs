//! What a plugin instance may do: capabilities (deny by default), the
//! memory cap, and the host side of the `log` import.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use serde::Deserialize;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::sluice::plugin::{log, types};

/// Capabilities a pipeline grants to one plugin. Everything is denied
/// unless listed here:
///
/// - no filesystem (unless `read_dirs`), no network (not grantable),
/// - no environment variables (unless `env`),
/// - clocks read as 1970-01-01 and never advance (unless `clock`),
/// - randomness is a fixed, deterministic stream (unless `random`),
/// - stdout/stderr are discarded (unless `stdio`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Real wall and monotonic clocks.
    #[serde(default)]
    pub clock: bool,
    /// Real (OS) randomness.
    #[serde(default)]
    pub random: bool,
    /// These environment variables, with the host's values.
    #[serde(default)]
    pub env: Vec<String>,
    /// These directories, read-only, at the same path inside the plugin.
    #[serde(default)]
    pub read_dirs: Vec<PathBuf>,
    /// The plugin's stdout and stderr go to the host's stderr.
    #[serde(default)]
    pub stdio: bool,
}

impl Grants {
    /// Resolves `read_dirs` against the pipeline file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        for d in &mut self.read_dirs {
            *d = crate::config::resolve(base, d);
        }
    }

    /// A one-line description for logs and `sluice check`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.clock {
            parts.push("clock".to_string());
        }
        if self.random {
            parts.push("random".to_string());
        }
        if !self.env.is_empty() {
            parts.push(format!("env {}", self.env.join(",")));
        }
        for d in &self.read_dirs {
            parts.push(format!("read {}", d.display()));
        }
        if self.stdio {
            parts.push("stdio".to_string());
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }

    /// Builds the WASI context these grants allow.
    pub(crate) fn wasi_ctx(&self) -> Result<WasiCtx, String> {
        Ok(self.wasi_builder()?.build())
    }

    /// The WASI context builder these grants allow, for more to be added
    /// (connectors' sockets).
    pub(crate) fn wasi_builder(&self) -> Result<WasiCtxBuilder, String> {
        let mut b = WasiCtxBuilder::new();
        if !self.clock {
            b.wall_clock(FrozenClock);
            b.monotonic_clock(FrozenClock);
        }
        if !self.random {
            b.secure_random(rand::rngs::StdRng::seed_from_u64(0x5111_ce00));
            b.insecure_random(rand::rngs::StdRng::seed_from_u64(0x5111_ce01));
            b.insecure_random_seed(0);
        }
        for name in &self.env {
            if let Ok(v) = std::env::var(name) {
                b.env(name, v);
            }
        }
        for d in &self.read_dirs {
            let guest = d.to_string_lossy();
            b.preopened_dir(d, guest.as_ref(), wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(|e| format!("`read_dirs` entry `{}`: {e}", d.display()))?;
        }
        if self.stdio {
            b.inherit_stdout();
            b.inherit_stderr();
        }
        Ok(b)
    }
}

/// A clock that always reads zero: time is denied.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Resource limits of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub memory_bytes: u64,
    /// CPU deadline for one `process` (and for `init`).
    pub batch_timeout: Duration,
    /// Log lines per batch before the rest are dropped.
    pub log_lines_per_batch: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            batch_timeout: Duration::from_secs(5),
            log_lines_per_batch: 100,
        }
    }
}

/// One budget for everything an instance holds: the bytes of all its linear
/// memories plus its tables' elements (8 bytes each), however many
/// memories and tables its core modules declare. Growth past the budget is
/// refused (the guest sees `memory.grow` fail, and traps), and the cap
/// remembers that it did. Counts of memories, tables and core instances are
/// bounded too, far below wasmtime's defaults.
pub(crate) struct MemoryCap {
    pub(crate) max: usize,
    pub(crate) hit: bool,
    /// Bytes held now (memories and table elements).
    pub(crate) used: usize,
}

/// Bytes a table element is counted for.
const TABLE_ELEMENT_BYTES: usize = 8;

impl MemoryCap {
    pub(crate) fn new(max: usize) -> Self {
        MemoryCap {
            max,
            hit: false,
            used: 0,
        }
    }

    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let more = desired.saturating_sub(current);
        match self.used.checked_add(more) {
            Some(total) if total <= self.max => {
                self.used = total;
                true
            }
            _ => {
                self.hit = true;
                false
            }
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }

    fn instances(&self) -> usize {
        // An interpreter component (Python) links a few dozen core modules.
        200
    }

    fn tables(&self) -> usize {
        200
    }

    fn memories(&self) -> usize {
        50
    }
}

/// Everything one instance's store holds.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) cap: MemoryCap,
    pub(crate) plugin: Arc<str>,
    pub(crate) version: Arc<str>,
    pub(crate) log_budget: u32,
    pub(crate) log_left: u32,
    pub(crate) log_dropped: u32,
    /// The last error-level line (the SDK logs panics there), to explain traps.
    pub(crate) last_error: Option<String>,
    /// When the current call's deadline passes: no sleep outlasts it.
    pub(crate) deadline: Option<std::time::Instant>,
    /// Set by the host to interrupt every running call (a stop).
    pub(crate) interrupt: Arc<std::sync::atomic::AtomicBool>,
    /// `wasi:http` state (linked for connectors only).
    pub(crate) http_ctx: wasmtime_wasi_http::WasiHttpCtx,
    /// What outgoing HTTP may do: deny-all for transforms.
    pub(crate) http: crate::connector::http::HttpPolicy,
    /// Secrets granted (none for transforms); redacted from what the
    /// plugin logs.
    pub(crate) secrets: Arc<crate::connector::grants::Secrets>,
}

impl HostState {
    /// The state of a fresh instance: no HTTP, no secrets.
    pub(crate) fn new(
        wasi: WasiCtx,
        memory_bytes: u64,
        plugin: Arc<str>,
        version: Arc<str>,
        log_lines_per_batch: u32,
        interrupt: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        HostState {
            wasi,
            table: ResourceTable::new(),
            cap: MemoryCap::new(usize::try_from(memory_bytes).unwrap_or(usize::MAX)),
            http: crate::connector::http::HttpPolicy::deny_all(&plugin),
            plugin,
            version,
            log_budget: log_lines_per_batch,
            log_left: log_lines_per_batch,
            log_dropped: 0,
            last_error: None,
            deadline: None,
            interrupt,
            http_ctx: wasmtime_wasi_http::WasiHttpCtx::new(),
            secrets: Arc::new(Default::default()),
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

/// The WASI version of the clock interface the host links (wasmtime-wasi
/// serves every 0.2.x import with it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces the monotonic clock's `subscribe-duration` and
/// `subscribe-instant` with versions that never wait past the current
/// call's deadline.
///
/// The epoch deadline interrupts guest code only: a guest blocked in a host
/// call (`std::thread::sleep`, a poll on a timer) escaped it, and a batch
/// took as long as the plugin slept. A timer is now cut at the deadline;
/// the guest wakes early, runs on, and the epoch interrupt ends the call.
pub(crate) fn bound_sleeps(
    linker: &mut wasmtime::component::Linker<HostState>,
) -> wasmtime::Result<()> {
    use wasmtime::StoreContextMut;
    use wasmtime::component::Resource;
    use wasmtime_wasi::clocks::WasiClocksCtxView;
    use wasmtime_wasi::p2::DynPollable;
    use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host;

    fn subscribe(state: &mut HostState, nanos: u64) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let left = state.deadline.map_or(u64::MAX, |d| {
            let left = d.saturating_duration_since(std::time::Instant::now());
            // A little past the deadline, so the interrupt is due on waking.
            u64::try_from(left.as_nanos())
                .unwrap_or(u64::MAX)
                .saturating_add(20_000_000)
        });
        let mut view = WasiClocksCtxView {
            ctx: state.wasi.clocks(),
            table: &mut state.table,
        };
        Ok((view.subscribe_duration(nanos.min(left))?,))
    }

    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut cx: StoreContextMut<'_, HostState>, (nanos,): (u64,)| subscribe(cx.data_mut(), nanos),
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut cx: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            let state = cx.data_mut();
            let now = WasiClocksCtxView {
                ctx: state.wasi.clocks(),
                table: &mut state.table,
            }
            .now()?;
            subscribe(state, when.saturating_sub(now))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

impl HostState {
    /// Called before each batch.
    pub(crate) fn reset_batch(&mut self) {
        if self.log_dropped > 0 {
            tracing::warn!(
                plugin = %self.plugin,
                version = %self.version,
                dropped = self.log_dropped,
                "plugin log lines dropped: over {} lines in one batch",
                self.log_budget
            );
        }
        self.log_left = self.log_budget;
        self.log_dropped = 0;
        self.last_error = None;
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: types::Level, message: String) {
        if self.log_left == 0 && !matches!(level, types::Level::Error) {
            self.log_dropped += 1;
            return;
        }
        let message = super::untrusted::clean(
            &self.secrets.redact(&message),
            super::untrusted::MAX_MESSAGE,
        );
        if matches!(level, types::Level::Error) {
            self.last_error = Some(message.clone());
        }
        if self.log_left == 0 {
            self.log_dropped += 1;
            return;
        }
        self.log_left -= 1;
        let (plugin, version) = (&*self.plugin, &*self.version);
        match level {
            types::Level::Trace => tracing::trace!(plugin, version, "{message}"),
            types::Level::Debug => tracing::debug!(plugin, version, "{message}"),
            types::Level::Info => tracing::info!(plugin, version, "{message}"),
            types::Level::Warn => tracing::warn!(plugin, version, "{message}"),
            types::Level::Error => tracing::error!(plugin, version, "{message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_budget_covers_every_memory_and_table() {
        let mut cap = MemoryCap::new(10 << 20);
        // Three memories of 3 MiB each fit, a fourth does not.
        for _ in 0..3 {
            assert!(cap.memory_growing(0, 3 << 20, None).unwrap_or(false));
        }
        assert!(!cap.memory_growing(0, 3 << 20, None).unwrap_or(true));
        assert!(cap.hit);
        // Table elements count against the same budget.
        let mut cap = MemoryCap::new(1 << 20);
        assert!(cap.table_growing(0, 100_000, None).unwrap_or(false));
        assert!(!cap.table_growing(100_000, 200_000, None).unwrap_or(true));
        assert!(!cap.memory_growing(0, 1 << 20, None).unwrap_or(true));
        assert!(cap.memory_growing(0, 64 << 10, None).unwrap_or(false));
        assert!(cap.instances() < 10_000 && cap.memories() < 10_000 && cap.tables() < 10_000);
    }
}
