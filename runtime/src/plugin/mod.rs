//! The plugin host: one wasmtime engine, compiled components cached by
//! content hash, sandboxed instances with a memory cap and a per-batch
//! deadline, and the transform slot that retries a failed batch once.

pub mod bindings;
mod cache;
mod error;
mod host;
mod sandbox;
mod slot;

pub use cache::content_hash;
pub use error::{CallError, PluginError};
pub use host::{LoadedPlugin, PluginHost, PluginInstance, PluginSpec};
pub use sandbox::{Grants, Limits};
pub use slot::{StageOutput, StageRecordError, TransformSlot, apply_outcomes};
