//! Compiled components cached by content hash: in memory for this process,
//! and on disk as precompiled artefacts so that a restart does not recompile.
//!
//! A precompiled artefact is native code that wasmtime loads without
//! checking it (`unsafe` deserialize): whoever can put a file in the cache
//! directory would run code in the host. Each artefact is therefore written
//! with a MAC (HMAC-SHA-256 under a key kept in the cache directory, mode
//! 0600, drawn on first use) over the component's content hash, the engine
//! key and the artefact's bytes; an artefact whose MAC does not match (a
//! file swapped with another plugin's, edited, or put there by someone
//! else) is ignored and the component compiled again.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{KeyInit, Mac};
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

    /// The MAC state over an artefact for the component `hash`.
    fn mac(&self, key: &[u8], hash: &str, artefact: &[u8]) -> Result<Hmac, String> {
        let mut m = Hmac::new_from_slice(key).map_err(|e| e.to_string())?;
        m.update(hash.as_bytes());
        m.update(b"\0");
        m.update(self.engine_key.as_bytes());
        m.update(b"\0");
        m.update(artefact);
        Ok(m)
    }

    /// The artefact at `path` if its MAC says it was made here for `hash`.
    fn load_checked(&self, key: &[u8], hash: &str, path: &Path) -> Result<Vec<u8>, String> {
        let artefact = std::fs::read(path).map_err(|e| e.to_string())?;
        let stored = std::fs::read(mac_path(path)).map_err(|e| format!("no MAC: {e}"))?;
        self.mac(key, hash, &artefact)?
            .verify_slice(&stored)
            .map_err(|_| {
                "its MAC does not match: not written by this cache for this component".to_string()
            })?;
        Ok(artefact)
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
        let key = match cache_key(dir) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read or create the plugin cache key; plugins are compiled on every start");
                None
            }
        };
        if let Some(key) = &key
            && path.is_file()
        {
            match self.load_checked(key, hash, &path) {
                // SAFETY: the bytes carry a MAC under this cache's key over
                // the component's hash, the engine key (the engine's
                // compatibility hash) and the bytes themselves: this cache
                // wrote them with `precompile_component` for this
                // component. A file that fails to deserialize anyway is
                // recompiled below.
                Ok(artefact) => match unsafe { Component::deserialize(engine, &artefact) } {
                    Ok(c) => return Ok((c, Origin::Disk)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "ignoring unusable precompiled plugin; recompiling")
                    }
                },
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring a precompiled plugin this cache cannot vouch for; recompiling")
                }
            }
        }
        let serialized = engine
            .precompile_component(bytes)
            .map_err(|e| format!("{e:#}"))?;
        if let Some(key) = &key {
            let written = self.mac(key, hash, &serialized).and_then(|m| {
                let mac = m.finalize().into_bytes();
                write_atomically(dir, &path, &serialized)
                    .and_then(|()| write_atomically(dir, &mac_path(&path), &mac))
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = written {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot write the plugin cache; plugins will be recompiled next start");
            }
        }
        // SAFETY: `serialized` was produced just now by this engine.
        let c =
            unsafe { Component::deserialize(engine, &serialized) }.map_err(|e| format!("{e:#}"))?;
        Ok((c, Origin::Compiled))
    }
}

type Hmac = hmac::Hmac<Sha256>;

/// The MAC file of an artefact.
fn mac_path(artefact: &Path) -> PathBuf {
    artefact.with_extension("cwasm.mac")
}

/// The cache's key: `.key` in the cache directory, 32 random bytes
/// readable by the owner only, drawn on first use.
fn cache_key(dir: &Path) -> Result<Vec<u8>, String> {
    let path = dir.join(".key");
    match std::fs::read(&path) {
        Ok(k) if k.len() == 32 => return Ok(k),
        Ok(_) => {
            return Err(format!(
                "`{}` is not a key this cache wrote",
                path.display()
            ));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.to_string()),
        Err(_) => {}
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| e.to_string())?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(&key).map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())?;
            Ok(key.to_vec())
        }
        // Another process drew it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::fs::read(&path).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
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
