//! The engine, loading a plugin (read, check, compile or fetch from cache,
//! pre-instantiate) and running instances.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

use super::bindings::sluice::plugin::types::{BatchError, InitError};
use super::bindings::{Transformer, TransformerPre};
use super::cache::{ComponentCache, Origin, content_hash};
use super::sandbox::HostState;
use super::untrusted;
use super::{CallError, Grants, Limits, PluginError};

/// How often the engine's epoch advances; deadlines are multiples of it.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The export every transform plugin must have (any 0.1.x).
const TRANSFORM_EXPORT: &str = "sluice:plugin/transform@0.1.";

/// One wasmtime engine per process, its linker, and the component cache.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    interrupt: Arc<AtomicBool>,
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// What to load: a transform entry of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// Transform name in the pipeline.
    pub name: String,
    /// The component file.
    pub path: PathBuf,
    /// The plugin's config as JSON text.
    pub config_json: String,
    /// Capabilities granted.
    pub grants: Grants,
    /// Resource limits.
    pub limits: Limits,
    /// Records a new version must reproduce before it goes live.
    pub canary: Option<super::golden::Canary>,
}

/// A checked, compiled, pre-instantiated plugin version.
pub struct LoadedPlugin {
    spec: PluginSpec,
    engine: Engine,
    pre: TransformerPre<HostState>,
    version: Arc<str>,
    name: Arc<str>,
    content_hash: String,
    /// How the component was obtained, and how long that took.
    pub load: (Origin, Duration),
    /// Size of the component file.
    pub size: u64,
    /// The host's interrupt flag.
    interrupt: Arc<AtomicBool>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish()
    }
}

/// What is wrong with a file that should be a component, judged from its
/// first bytes (the loaders of transforms and connectors say the same).
pub(crate) fn not_a_component(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Some("is not a WebAssembly file (empty, truncated, or another kind of file)");
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Some(
            "is a core WebAssembly module, not a component: build it for the `wasm32-wasip2` target (`sluice plugin build`)",
        );
    }
    None
}

/// The names a component exports, when one of them is an instance whose
/// name starts with `prefix` (`sluice:plugin/transform@0.1.`); otherwise
/// the exports listed for an error message (`nothing` when none).
pub(crate) fn exports_instance(
    engine: &Engine,
    component: &wasmtime::component::Component,
    prefix: &str,
) -> Result<Vec<String>, String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let found = ty.exports(engine).any(|(n, item)| {
        n.starts_with(prefix) && matches!(item.ty, ComponentItem::ComponentInstance(_))
    });
    if found {
        return Ok(exports);
    }
    Err(if exports.is_empty() {
        "nothing".into()
    } else {
        exports
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Starts the thread that advances `engine`'s epoch every [`EPOCH_TICK`];
/// it ends when the returned flag is set.
pub(crate) fn start_ticker(
    engine: &Engine,
) -> Result<(Arc<AtomicBool>, JoinHandle<()>), PluginError> {
    let stop = Arc::new(AtomicBool::new(false));
    let engine = engine.clone();
    let flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name("sluice-epoch".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .map_err(|e| PluginError::Engine(format!("cannot start the epoch thread: {e}")))?;
    Ok((stop, handle))
}

/// Arms the per-call deadline machinery of a fresh store: every epoch tick
/// of a running call traps at the call's deadline, or at once when the
/// host interrupts its calls (a stop).
pub(crate) fn arm_deadlines(store: &mut Store<HostState>) {
    store.limiter(|s| &mut s.cap);
    store.epoch_deadline_callback(|cx| {
        let s = cx.data();
        if s.interrupt.load(Ordering::Relaxed) {
            return Err(super::error::Interrupted.into());
        }
        if s.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        Ok(wasmtime::UpdateDeadline::Continue(1))
    });
    store.set_epoch_deadline(1);
}

impl PluginHost {
    /// Creates the engine (epoch interruption on) and its ticker thread.
    /// `cache_dir` keeps precompiled plugins across restarts.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // For `perf`: names of the plugins' compiled functions in
        // /tmp/perf-PID.map (docs/plugins.md, "Profiling a plugin").
        if std::env::var_os("SLUICE_PERF_MAP").is_some_and(|v| !v.is_empty()) {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        super::sandbox::bound_sleeps(&mut linker)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        Transformer::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let (ticker_stop, ticker) = start_ticker(&engine)?;
        let cache = ComponentCache::new(&engine, cache_dir);
        Ok(PluginHost {
            engine,
            linker,
            cache,
            ticker_stop,
            ticker: Some(ticker),
            interrupt: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Interrupts every call running in a plugin of this host, and every
    /// later one (a stop): within one epoch tick of guest code, at the
    /// call's deadline for a guest waiting on a timer. The calls fail with
    /// [`CallError::Stopped`].
    pub fn interrupt(&self) {
        self.interrupt.store(true, Ordering::Relaxed);
    }

    /// Reads, checks, compiles (or loads from cache) and pre-instantiates a
    /// plugin. Does not call `init`: [`LoadedPlugin::instantiate`] does.
    pub fn load(&self, spec: PluginSpec) -> Result<LoadedPlugin, PluginError> {
        let started = Instant::now();
        let bytes = std::fs::read(&spec.path).map_err(|source| PluginError::Read {
            name: spec.name.clone(),
            path: spec.path.clone(),
            source,
        })?;
        let not_component = |why: String| PluginError::NotAComponent {
            name: spec.name.clone(),
            path: spec.path.clone(),
            why,
        };
        if let Some(why) = not_a_component(&bytes) {
            return Err(not_component(why.into()));
        }
        let hash = content_hash(&bytes);
        // A version is the component and what it was started with: the
        // same file with another config is another version.
        let identity = format!(
            "{hash}\n{}\n{:?}\n{:?}",
            spec.config_json, spec.grants, spec.limits
        );
        let version_hash = content_hash(identity.as_bytes());
        let version: Arc<str> = Arc::from(&version_hash[..12]);
        let (component, origin) = self
            .cache
            .get(&self.engine, &hash, &bytes)
            .map_err(|e| not_component(format!("is not a valid component: {e}")))?;
        let exports =
            exports_instance(&self.engine, &component, TRANSFORM_EXPORT).map_err(|exports| {
                PluginError::WrongWorld {
                    name: spec.name.clone(),
                    path: spec.path.clone(),
                    exports,
                }
            })?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| PluginError::Link {
                    name: spec.name.clone(),
                    path: spec.path.clone(),
                    reason: format!("{e:#}"),
                })?;
        let pre = TransformerPre::new(instance_pre).map_err(|e| PluginError::WrongWorld {
            name: spec.name.clone(),
            path: spec.path.clone(),
            exports: format!("{} ({e:#})", exports.join(", ")),
        })?;
        let size = bytes.len() as u64;
        tracing::info!(plugin = %spec.name, version = %version, path = %spec.path.display(), ?origin, ms = started.elapsed().as_millis() as u64, "plugin loaded");
        Ok(LoadedPlugin {
            interrupt: self.interrupt.clone(),
            name: Arc::from(spec.name.as_str()),
            content_hash: hash.clone(),
            spec,
            engine: self.engine.clone(),
            pre,
            version,
            load: (origin, started.elapsed()),
            size,
        })
    }
}

impl LoadedPlugin {
    /// The transform's name in the pipeline.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version: the first 12 hex digits of the component's SHA-256.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The SHA-256 of the component file as it was loaded.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    /// The spec it was loaded from.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// A fresh, sandboxed instance on which `init` succeeded.
    pub fn instantiate(&self) -> Result<PluginInstance, PluginError> {
        let init_err = |reason: String| PluginError::Init {
            name: self.spec.name.clone(),
            version: self.version.to_string(),
            path: self.spec.path.clone(),
            reason,
        };
        let wasi = self
            .spec
            .grants
            .wasi_ctx()
            .map_err(|reason| PluginError::Grant {
                name: self.spec.name.clone(),
                reason,
            })?;
        let limits = self.spec.limits;
        let state = HostState::new(
            wasi,
            limits.memory_bytes,
            self.name.clone(),
            self.version.clone(),
            limits.log_lines_per_batch,
            self.interrupt.clone(),
        );
        let mut store = Store::new(&self.engine, state);
        arm_deadlines(&mut store);
        store.data_mut().deadline = Some(std::time::Instant::now() + limits.batch_timeout);
        let bindings = self.pre.instantiate(&mut store).map_err(|e| {
            init_err(format!(
                "instantiation failed: {}",
                describe(&e, &store, limits)
            ))
        })?;
        match bindings
            .sluice_plugin_transform()
            .call_init(&mut store, &self.spec.config_json)
        {
            Ok(Ok(())) => {}
            Ok(Err(InitError::InvalidConfig(m))) => {
                let m = untrusted::clean(&m, untrusted::MAX_MESSAGE);
                return Err(init_err(format!("invalid config: {m}")));
            }
            Ok(Err(InitError::Other(m))) => {
                return Err(init_err(untrusted::clean(&m, untrusted::MAX_MESSAGE)));
            }
            Err(e) => return Err(init_err(format!("`init` {}", describe(&e, &store, limits)))),
        }
        Ok(PluginInstance {
            store,
            bindings,
            limits,
        })
    }
}

/// Turns a wasmtime error from a call into a short, actionable message.
fn describe(e: &wasmtime::Error, store: &Store<HostState>, limits: Limits) -> String {
    call_error(e, store, limits).to_string()
}

pub(crate) fn call_error(
    e: &wasmtime::Error,
    store: &Store<HostState>,
    limits: Limits,
) -> CallError {
    if e.downcast_ref::<super::error::Interrupted>().is_some() {
        return CallError::Stopped;
    }
    if store.data().cap.hit {
        return CallError::Memory(limits.memory_bytes >> 20);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Deadline(limits.batch_timeout.as_millis() as u64),
        Some(trap) => {
            let text = trap.to_string();
            let mut msg = text
                .strip_prefix("wasm trap: ")
                .unwrap_or(&text)
                .to_string();
            if let Some(last) = &store.data().last_error {
                msg = format!("{last} ({msg})");
            }
            CallError::Trap(msg)
        }
        None => CallError::Trap(untrusted::clean(&format!("{e:#}"), untrusted::MAX_MESSAGE)),
    }
}

/// A running, initialised instance of a plugin.
pub struct PluginInstance {
    store: Store<HostState>,
    bindings: Transformer,
    limits: Limits,
}

impl PluginInstance {
    /// Calls `process` with one encoded batch, under the deadline.
    #[allow(clippy::ptr_arg, reason = "the generated binding takes &Vec<u8>")]
    pub fn process(&mut self, batch: &Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.store.data_mut().reset_batch();
        self.store.data_mut().deadline =
            Some(std::time::Instant::now() + self.limits.batch_timeout);
        self.store.set_epoch_deadline(1);
        match self
            .bindings
            .sluice_plugin_transform()
            .call_process(&mut self.store, batch)
        {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(BatchError::MalformedBatch(m))) => {
                let m = untrusted::clean(&m, untrusted::MAX_MESSAGE);
                Err(CallError::Batch(format!("malformed batch: {m}")))
            }
            Ok(Err(BatchError::NotInitialized)) => Err(CallError::Batch("not initialized".into())),
            Ok(Err(BatchError::Other(m))) => Err(CallError::Batch(untrusted::clean(
                &m,
                untrusted::MAX_MESSAGE,
            ))),
            Err(e) => Err(call_error(&e, &self.store, self.limits)),
        }
    }
}
