//! Compiled components cached by content hash: in memory for this process,
//! and on disk as precompiled artefacts so that a restart does not recompile.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The hex SHA-256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Already compiled in this process.
    Memory,
    /// Loaded from a precompiled artefact on disk.
    Disk,
    /// Compiled now.
    Compiled,
}

/// The two-level cache.
pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: String,
    memory: Mutex<HashMap<String, Component>>,
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = format!("v{}-{:016x}", env!("CARGO_PKG_VERSION"), h.finish());
        ComponentCache {
            dir,
            engine_key,
            memory: Mutex::new(HashMap::new()),
        }
    }

    fn path_for(&self, dir: &Path, hash: &str) -> PathBuf {
        dir.join(format!("{hash}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `bytes` (whose hash is `hash`).
    pub(crate) fn get(
        &self,
        engine: &Engine,
        hash: &str,
        bytes: &[u8],
    ) -> Result<(Component, Origin), String> {
        if let Some(c) = self.memory.lock().map_err(|e| e.to_string())?.get(hash) {
            return Ok((c.clone(), Origin::Memory));
        }
        let (component, origin) = self.load_or_compile(engine, hash, bytes)?;
        self.memory
            .lock()
            .map_err(|e| e.to_string())?
            .insert(hash.to_string(), component.clone());
        Ok((component, origin))
    }

    fn load_or_compile(
        &self,
        engine: &Engine,
        hash: &str,
        bytes: &[u8],
    ) -> Result<(Component, Origin), String> {
        let Some(dir) = &self.dir else {
            let c = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
            return Ok((c, Origin::Compiled));
        };
        let path = self.path_for(dir, hash);
        if path.is_file() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the name),
            // into Sluice's own cache directory. A corrupt file fails to
            // deserialize and is recompiled below.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, Origin::Disk)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "ignoring unusable precompiled plugin; recompiling")
                }
            }
        }
        let serialized = engine
            .precompile_component(bytes)
            .map_err(|e| format!("{e:#}"))?;
        if let Err(e) = write_atomically(dir, &path, &serialized) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the plugin cache; plugins will be recompiled next start");
        }
        // SAFETY: `serialized` was produced just now by this engine.
        let c =
            unsafe { Component::deserialize(engine, &serialized) }.map_err(|e| format!("{e:#}"))?;
        Ok((c, Origin::Compiled))
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
