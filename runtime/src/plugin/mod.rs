//! The plugin host: one wasmtime engine, compiled components cached by
//! content hash, sandboxed instances with a memory cap and a per-batch
//! deadline, and the transform slot that retries a failed batch once.

pub mod bindings;
pub(crate) mod cache;
mod candidate;
mod error;
pub mod golden;
pub(crate) mod host;
pub(crate) mod sandbox;
mod slot;
pub mod untrusted;

#[cfg(all(test, feature = "toolchain"))]
#[allow(clippy::unwrap_used)]
pub(crate) mod wat_tests;

pub use cache::content_hash;
pub use candidate::Candidate;
pub use error::{CallError, PluginError};
pub use host::{LoadedPlugin, PluginHost, PluginInstance, PluginSpec};
pub use sandbox::{Grants, Limits};
pub use slot::{StageOutput, StageRecordError, TransformSlot, apply_outcomes};

/// The spec of each transform of a pipeline.
pub fn plugin_specs(p: &crate::config::Pipeline) -> Vec<PluginSpec> {
    p.config
        .transforms
        .iter()
        .map(|t| PluginSpec {
            name: t.name.clone(),
            path: t.plugin.clone(),
            config_json: crate::config::toml_to_json(&t.config),
            grants: t.grants.clone(),
            limits: p.config.runtime.limits_for(t),
            canary: t.canary.clone(),
        })
        .collect()
}

/// Runs a plugin's canary records, if its spec has some: how many passed
/// (`None` without canary records).
pub fn check_canary_of(plugin: &LoadedPlugin) -> Result<Option<usize>, PluginError> {
    let Some(canary) = &plugin.spec().canary else {
        return Ok(None);
    };
    let n = golden::check_canary(plugin, canary).map_err(|reason| PluginError::Canary {
        name: plugin.name().to_string(),
        version: plugin.version().to_string(),
        reason,
    })?;
    tracing::info!(plugin = %plugin.name(), version = %plugin.version(), records = n, "canary records pass");
    Ok(Some(n))
}
