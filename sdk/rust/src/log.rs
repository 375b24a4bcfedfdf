//! Logging into the host's log, tagged with the plugin's name and version.
//!
//! Use the macros: `sluice_sdk::info!("loaded {} rules", n)`. The host keeps a
//! per-batch budget of lines; do not log per record in the normal case.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed diagnostics.
    Trace,
    /// Diagnostics for plugin authors.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one line to the host's log.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::sluice::plugin::types::Level as L;
        let l = match level {
            Level::Trace => L::Trace,
            Level::Debug => L::Debug,
            Level::Info => L::Info,
            Level::Warn => L::Warn,
            Level::Error => L::Error,
        };
        crate::bindings::sluice::plugin::log::log(l, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        // Natively (unit tests, benchmarks) there is no host: use stderr.
        if matches!(level, Level::Warn | Level::Error) {
            eprintln!("[{level:?}] {message}");
        }
    }
}

/// Logs at info level with `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs at warn level with `format!` arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs at error level with `format!` arguments.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)*)) };
}

/// Logs at debug level with `format!` arguments.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)*)) };
}

/// Sends panic messages to the host's log (at error level) so that the host
/// can say why the plugin trapped. The SDK's `export!` installs it; plugins
/// that implement the WIT exports by hand call it from `init`.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            log(Level::Error, &format!("plugin panicked: {info}"));
        }));
    });
}
