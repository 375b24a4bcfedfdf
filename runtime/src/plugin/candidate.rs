//! The one way a plugin version gets ready to run: load (compile, check the
//! world), run its canary records, start an instance (`init` with its
//! config). Start-up, hot reload, shadows and `sluice check` all go
//! through [`Candidate::build`]; a rollback restarts a version that already
//! passed it ([`Candidate::restart`]).

use std::sync::Arc;
use std::time::Instant;

use super::{LoadedPlugin, PluginError, PluginHost, PluginInstance, PluginSpec, check_canary_of};

/// A plugin version with a started instance, ready to go live (or to run in
/// shadow) between two batches.
pub struct Candidate {
    /// The version.
    pub plugin: Arc<LoadedPlugin>,
    /// Its started instance (`init` done).
    pub instance: PluginInstance,
    /// When it was ready (to measure the time it took to go live).
    pub ready_at: Instant,
    /// Canary records it reproduced (`None`: none configured, or a
    /// restart of a version that passed them before).
    pub canary: Option<usize>,
}

impl Candidate {
    /// Loads `spec` with `host`, runs its canary records and starts an
    /// instance: the checks every version passes before it may run.
    pub fn build(host: &PluginHost, spec: &PluginSpec) -> Result<Self, PluginError> {
        let plugin = Arc::new(host.load(spec.clone())?);
        let canary = check_canary_of(&plugin)?;
        let mut c = Self::restart(plugin)?;
        c.canary = canary;
        Ok(c)
    }

    /// What the history says of its canary.
    pub fn canary_result(&self) -> String {
        match self.canary {
            Some(n) => format!("passed ({n} records)"),
            None => "none configured".into(),
        }
    }

    /// A fresh instance of a version that was built before (a rollback, a
    /// promoted shadow whose instance was lost).
    pub fn restart(plugin: Arc<LoadedPlugin>) -> Result<Self, PluginError> {
        let instance = plugin.instantiate()?;
        Ok(Candidate {
            plugin,
            instance,
            ready_at: Instant::now(),
            canary: None,
        })
    }
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("plugin", &self.plugin)
            .field("canary", &self.canary)
            .finish_non_exhaustive()
    }
}
