//! Plugin errors: loading (refused at start) and calling (one batch failed).

use std::path::PathBuf;

/// A plugin that cannot be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("plugin `{name}`: cannot read `{path}`: {source}")]
    Read {
        /// Transform name.
        name: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a WebAssembly component.
    #[error("plugin `{name}`: `{path}` {why}")]
    NotAComponent {
        /// Transform name.
        name: String,
        /// The file.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// The component does not export the transform interface.
    #[error(
        "plugin `{name}`: `{path}` does not export `sluice:plugin/transform@0.1.x` (it exports {exports}); build it against the `transformer` world in wit/plugin.wit, e.g. with `sluice plugin new`"
    )]
    WrongWorld {
        /// Transform name.
        name: String,
        /// The file.
        path: PathBuf,
        /// What it exports.
        exports: String,
    },
    /// The component needs imports that this pipeline does not grant.
    #[error("plugin `{name}`: `{path}` cannot be linked: {reason}")]
    Link {
        /// Transform name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Wasmtime's explanation.
        reason: String,
    },
    /// A grant cannot be set up (a directory that does not exist...).
    #[error("plugin `{name}`: grant cannot be applied: {reason}")]
    Grant {
        /// Transform name.
        name: String,
        /// Why.
        reason: String,
    },
    /// `init` returned an error or the instance failed while starting.
    #[error("plugin `{name}` ({version}) from `{path}` refused to start: {reason}")]
    Init {
        /// Transform name.
        name: String,
        /// Content hash.
        version: String,
        /// The file.
        path: PathBuf,
        /// The plugin's message.
        reason: String,
    },
    /// The version does not reproduce its canary records.
    #[error("plugin `{name}` ({version}) fails its canary: {reason}")]
    Canary {
        /// Transform name.
        name: String,
        /// Version.
        version: String,
        /// The first difference.
        reason: String,
    },
    /// The engine or the compile cache failed.
    #[error("plugin host: {0}")]
    Engine(String),
}

/// Why one call into a plugin failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The plugin trapped (panic, unreachable, out-of-bounds...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The batch ran longer than the deadline.
    #[error("exceeded its deadline of {0} ms for one batch")]
    Deadline(u64),
    /// The plugin tried to grow memory beyond its cap.
    #[error("exceeded its memory limit of {0} MiB")]
    Memory(u64),
    /// The plugin returned `batch-error`.
    #[error("returned an error for the batch: {0}")]
    Batch(String),
    /// The plugin returned outcomes that break the contract.
    #[error("broke the contract: {0}")]
    Contract(String),
    /// A fresh instance could not be started for the retry.
    #[error("could not restart: {0}")]
    Restart(String),
    /// The pipeline is stopping: the call was interrupted. Not the
    /// plugin's fault: the batch is neither retried nor dead-lettered, and
    /// is read again by the next run.
    #[error("was interrupted: the pipeline is stopping")]
    Stopped,
}

/// The error an epoch callback traps with when the host interrupts calls.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted: the pipeline is stopping")]
pub struct Interrupted;
