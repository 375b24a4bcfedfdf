//! Loading a connector component and making sandboxed instances of it:
//! the same engine settings, cache, memory cap and deadlines as
//! transforms, plus outgoing HTTP through the pipeline's [`HttpPolicy`],
//! TCP to granted addresses, and the `secrets` import.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Engine, Store};

use super::bindings::source::sluice::plugin::secrets;
use super::grants::Secrets;
use super::http::{HttpPolicy, HttpStats, RateLimiter};
use super::{ConnectorConfig, ConnectorError, Kind};
use crate::plugin::cache::ComponentCache;
use crate::plugin::sandbox::HostState;
use crate::plugin::{CallError, Limits, content_hash, untrusted};

/// A connector component, checked, compiled and pre-instantiated, with
/// everything its instances are given.
pub struct ConnectorHost {
    engine: Engine,
    pre: InstancePre<HostState>,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    interrupt: Arc<AtomicBool>,
    /// Connector name (the pipeline's, or the file's).
    pub name: Arc<str>,
    /// The version: 12 hex digits of the hash of component, config and grants.
    pub version: Arc<str>,
    /// SHA-256 of the component file.
    pub content_hash: String,
    /// `source connector NAME (VERSION)`, for messages.
    pub who: String,
    /// `NAME VERSION` from the component's manifest, when it has one.
    pub package: Option<String>,
    pub(crate) limits: Limits,
    secrets: Arc<Secrets>,
    http: HttpPolicy,
    tcp: Arc<Vec<SocketAddr>>,
    config: ConnectorConfig,
}

impl Drop for ConnectorHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for ConnectorHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.who)
    }
}

/// The export each kind of connector must have (any 0.1.x).
fn export_prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Source => "sluice:plugin/source@0.1.",
        Kind::Sink => "sluice:plugin/sink@0.1.",
    }
}

impl ConnectorHost {
    /// Reads, checks (manifest, signature, grants), compiles or loads from
    /// the cache, and links a connector.
    pub fn load(config: &ConnectorConfig, kind: Kind) -> Result<ConnectorHost, ConnectorError> {
        Self::load_with(config, kind, Arc::new(AtomicBool::new(false)))
    }

    /// [`ConnectorHost::load`], with the flag that interrupts its calls
    /// (shared by the versions of one connector across hot swaps).
    pub fn load_with(
        config: &ConnectorConfig,
        kind: Kind,
        interrupt: Arc<AtomicBool>,
    ) -> Result<ConnectorHost, ConnectorError> {
        let started = Instant::now();
        let name = config.name();
        let who0 = format!("{} connector `{name}`", kind.as_str());
        let fail = |message: String| ConnectorError::Load {
            who: who0.clone(),
            path: config.path.clone(),
            message,
        };
        let bytes = std::fs::read(&config.path).map_err(|e| fail(format!("cannot read: {e}")))?;
        if let Some(why) = crate::plugin::host::not_a_component(&bytes) {
            return Err(fail(why.into()));
        }
        let package = super::package::check(config, kind, &bytes).map_err(fail)?;
        let secrets = Secrets::resolve(&config.grants.secrets, &config.base_dir).map_err(fail)?;
        let credentials = config.grants.credentials(&secrets).map_err(fail)?;
        let origins = config.grants.origins().map_err(fail)?;
        let tcp = config.grants.tcp_addrs().map_err(fail)?;
        let hash = content_hash(&bytes);
        let identity = format!(
            "{hash}\n{}\n{:?}\n{:?}",
            config.config_json(),
            config.grants,
            config.limits
        );
        let version: Arc<str> = Arc::from(&content_hash(identity.as_bytes())[..12]);
        let who = match &package {
            Some(m) => format!(
                "{} connector `{name}` ({} {}, {version})",
                kind.as_str(),
                m.name,
                m.version
            ),
            None => format!("{} connector `{name}` ({version})", kind.as_str()),
        };

        let mut wconfig = wasmtime::Config::new();
        wconfig.wasm_component_model(true);
        wconfig.epoch_interruption(true);
        let engine = Engine::new(&wconfig).map_err(|e| fail(format!("engine: {e:#}")))?;
        let cache = ComponentCache::new(&engine, config.cache_dir.clone());
        let (component, origin) = cache
            .get(&engine, &hash, &bytes)
            .map_err(|e| fail(format!("is not a valid component: {e}")))?;
        check_world(&engine, &component, kind).map_err(fail)?;
        let linker = linker(&engine).map_err(|e| fail(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| fail(format!("cannot be linked: {e:#}")))?;
        let (ticker_stop, ticker) =
            crate::plugin::host::start_ticker(&engine).map_err(|e| fail(e.to_string()))?;
        let limits = config.limits.sandbox();
        let mut granted = Vec::new();
        for o in origins {
            let cred = credentials
                .iter()
                .find(|(c, _)| *c == o)
                .map(|(_, c)| c.clone());
            granted.push((o, cred));
        }
        let http = HttpPolicy {
            who: Arc::from(who.as_str()),
            origins: Arc::new(granted),
            timeout: Duration::from_millis(config.limits.request_timeout_ms),
            limiter: Arc::new(RateLimiter::new(config.limits.requests_per_second)),
            stats: Arc::new(HttpStats::default()),
            chaos: config.chaos,
            pool: Some(
                super::pool::Pool::new(
                    Duration::from_millis(config.limits.request_timeout_ms),
                    config.grants.tls_ca.as_deref(),
                )
                .map_err(fail)?,
            ),
            secrets: Arc::new(secrets.clone()),
        };
        tracing::info!(connector = %who, path = %config.path.display(), grants = %config.grants.describe(), ?origin, ms = started.elapsed().as_millis() as u64, "connector loaded");
        Ok(ConnectorHost {
            engine,
            pre,
            ticker_stop,
            ticker: Some(ticker),
            interrupt,
            name: Arc::from(name.as_str()),
            version,
            content_hash: hash,
            who,
            package: package
                .as_ref()
                .map(|m| format!("{} {}", m.name, m.version)),
            limits,
            secrets: Arc::new(secrets),
            http,
            tcp: Arc::new(tcp),
            config: config.clone(),
        })
    }

    /// When the component file changed last (size and modification time),
    /// to notice a new version.
    pub fn file_stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        file_stamp(&self.config.path)
    }

    /// The config the connector was loaded from.
    pub fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    /// HTTP counters and the last refused request.
    pub fn http_stats(&self) -> &HttpStats {
        &self.http.stats
    }

    /// The HTTP counters, shared (for the status).
    pub(crate) fn http_stats_handle(&self) -> Arc<HttpStats> {
        self.http.stats.clone()
    }

    /// Interrupts every call running in an instance (a stop).
    pub fn interrupt(&self) {
        self.interrupt.store(true, Ordering::Relaxed);
    }

    /// A fresh store with the grants applied, and the component's
    /// pre-instance to instantiate in it.
    pub(crate) fn store(&self) -> Result<Store<HostState>, ConnectorError> {
        let mut wasi =
            self.config
                .grants
                .sandbox()
                .wasi_builder()
                .map_err(|m| ConnectorError::Load {
                    who: self.who.clone(),
                    path: self.config.path.clone(),
                    message: m,
                })?;
        if !self.tcp.is_empty() {
            let allowed = self.tcp.clone();
            wasi.allow_tcp(true);
            wasi.allow_udp(false);
            wasi.allow_ip_name_lookup(true);
            let who = self.who.clone();
            wasi.socket_addr_check(move |addr, usage| {
                use wasmtime_wasi::sockets::SocketAddrUse;
                let ok = match usage {
                    SocketAddrUse::TcpConnect => allowed.contains(&addr),
                    // The implicit bind before a connect: any local address.
                    SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                    _ => false,
                };
                if !ok {
                    tracing::warn!(connector = %who, %addr, ?usage, "TCP refused: address not granted (grant it in `grants.tcp`)");
                }
                Box::pin(async move { ok })
            });
        }
        let mut state = HostState::new(
            wasi.build(),
            self.limits.memory_bytes,
            self.name.clone(),
            self.version.clone(),
            self.limits.log_lines_per_batch,
            self.interrupt.clone(),
        );
        state.http = self.http.clone();
        state.secrets = self.secrets.clone();
        let mut store = Store::new(&self.engine, state);
        crate::plugin::host::arm_deadlines(&mut store);
        Ok(store)
    }

    /// The pre-instance.
    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// Starts a call: resets the log budget, arms the deadline.
    pub(crate) fn begin_call(&self, store: &mut Store<HostState>) {
        store.data_mut().reset_batch();
        store.data_mut().deadline = Some(Instant::now() + self.limits.batch_timeout);
        store.set_epoch_deadline(1);
    }

    /// Turns a failed call into a message naming what happened; a refused
    /// HTTP request or TCP address is named too.
    pub(crate) fn call_failed(&self, e: &wasmtime::Error, store: &Store<HostState>) -> CallError {
        crate::plugin::host::call_error(e, store, self.limits)
    }

    /// Text the connector handed back (an error, a refusal): capped,
    /// escaped, secrets replaced by `***`.
    pub fn clean(&self, text: &str) -> String {
        untrusted::clean(&self.secrets.redact(text), untrusted::MAX_MESSAGE)
    }

    /// A code the connector handed back (a refusal's): capped at
    /// [`untrusted::MAX_CODE`], escaped, secrets replaced; empty becomes
    /// `refused`.
    pub fn clean_code(&self, code: &str) -> String {
        let c = untrusted::clean(&self.secrets.redact(code), untrusted::MAX_CODE);
        if c.is_empty() { "refused".into() } else { c }
    }

    /// The last HTTP request refused, if any, for error messages.
    pub fn last_denied(&self) -> Option<String> {
        self.http
            .stats
            .last_denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Why a connector call gave no answer, classified for the source and
/// sink loops.
pub(crate) enum Failure {
    /// `transient(...)`: try again after a wait.
    Transient(String),
    /// `fatal(...)` or `invalid-config(...)`: stop.
    Fatal(String),
    /// The instance is gone (trap, deadline, memory, a broken contract).
    Crash(String),
    /// The pipeline is stopping (a call was interrupted).
    Stopped,
}

impl ConnectorHost {
    /// Adds the last refused network request to a message: a connector
    /// that failed because it asked for an address it was not granted
    /// says so.
    fn with_denial(&self, message: String) -> String {
        match self.last_denied() {
            Some(d) => format!("{message} (the host refused a request: {d})"),
            None => message,
        }
    }

    /// A failed call (trap, deadline, memory cap, interrupt).
    pub(crate) fn failure(&self, e: &wasmtime::Error, store: &Store<HostState>) -> Failure {
        match self.call_failed(e, store) {
            CallError::Stopped => Failure::Stopped,
            other => Failure::Crash(self.with_denial(other.to_string())),
        }
    }

    /// An error the connector returned.
    pub(crate) fn guest_failure(
        &self,
        e: super::bindings::source::sluice::plugin::connector_types::ConnectorError,
    ) -> Failure {
        use super::bindings::source::sluice::plugin::connector_types::ConnectorError as E;
        match e {
            E::Transient(m) => Failure::Transient(self.with_denial(self.clean(&m))),
            E::Fatal(m) => Failure::Fatal(self.with_denial(self.clean(&m))),
            E::InvalidConfig(m) => Failure::Fatal(format!("invalid config: {}", self.clean(&m))),
        }
    }
}

/// The modification time and size of a file.
pub(crate) fn file_stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn check_world(engine: &Engine, component: &Component, kind: Kind) -> Result<(), String> {
    let prefix = export_prefix(kind);
    crate::plugin::host::exports_instance(engine, component, prefix)
        .map(|_| ())
        .map_err(|exports| {
            format!(
                "does not export `{prefix}x` (it exports {exports}); build it against the `{}-connector` world in wit/connector.wit (`sluice plugin new NAME --kind {}`)",
                kind.as_str(),
                kind.as_str()
            )
        })
}

fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    use crate::plugin::bindings::sluice::plugin::{log, types};
    let mut linker: Linker<HostState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    crate::plugin::sandbox::bound_sleeps(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    types::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    log::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    super::bindings::source::sluice::plugin::connector_types::add_to_linker::<_, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    secrets::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    super::bindings::source::sluice::plugin::http_client::add_to_linker::<_, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    super::bindings::source::sluice::plugin::json::add_to_linker::<_, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}

impl super::bindings::source::sluice::plugin::connector_types::Host for HostState {}

impl secrets::Host for HostState {
    fn get(&mut self, name: String) -> Option<String> {
        self.secrets.get(&name).map(str::to_string)
    }
}
