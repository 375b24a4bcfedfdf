//! A connector package: the component, the manifest inside it, and an
//! optional signature beside it.
//!
//! - The **manifest** is TOML in a custom section named `sluice-manifest`
//!   of the component (`sluice plugin build` puts the plugin directory's
//!   `connector.toml` there): name, version, kind, the capabilities the
//!   connector asks for, its config keys. A pipeline that grants less than
//!   it asks is refused before anything runs, naming what is missing.
//! - The **signature** is `FILE.sig`: an ed25519 signature of the
//!   SHA-256 of the whole component file (manifest included), with the
//!   signer's public key. A connector with `trusted_keys` (or the
//!   runtime's) runs only when signed by one of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ConnectorConfig, Kind};

/// The custom section holding the manifest.
pub const MANIFEST_SECTION: &str = "sluice-manifest";

/// What a connector says about itself.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Package name (`acme-crm-source`).
    pub name: String,
    /// Package version (semver).
    pub version: String,
    /// `source` or `sink`.
    pub kind: String,
    /// Who ships it.
    #[serde(default)]
    pub vendor: Option<String>,
    /// One line on what it does.
    #[serde(default)]
    pub description: Option<String>,
    /// What it needs to be granted.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Its config keys.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigKey>,
}

/// The capabilities a connector asks for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Needs outbound HTTP (the operator grants the origins).
    #[serde(default)]
    pub http: bool,
    /// Needs TCP connections (the operator grants the addresses).
    #[serde(default)]
    pub tcp: bool,
    /// Secrets it reads by name; each must be granted.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Secrets it reads when present.
    #[serde(default)]
    pub optional_secrets: Vec<String>,
}

/// One config key of a connector.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigKey {
    /// The connector cannot start without it.
    #[serde(default)]
    pub required: bool,
    /// What it means.
    #[serde(default)]
    pub description: Option<String>,
}

impl Manifest {
    /// Parses and checks a manifest's text.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest =
            toml::from_str(text).map_err(|e| format!("its manifest is not valid: {e}"))?;
        if m.kind != "source" && m.kind != "sink" {
            return Err(format!(
                "its manifest says kind `{}`: write `source` or `sink`",
                m.kind
            ));
        }
        if m.name.trim().is_empty() || m.version.trim().is_empty() {
            return Err("its manifest needs a `name` and a `version`".into());
        }
        Ok(m)
    }

    /// What a pipeline's grants and config lack for this connector, each
    /// as a sentence naming the setting to add.
    pub fn missing(&self, config: &ConnectorConfig) -> Vec<String> {
        let mut out = Vec::new();
        if self.capabilities.http && config.grants.http.is_empty() {
            out.push("it needs outbound HTTP: grant the origins it may call in `grants.http = [\"https://host\"]`".to_string());
        }
        if self.capabilities.tcp && config.grants.tcp.is_empty() {
            out.push(
                "it needs TCP connections: grant the addresses in `grants.tcp = [\"host:port\"]`"
                    .to_string(),
            );
        }
        for s in &self.capabilities.secrets {
            if !config.grants.secrets.contains_key(s) {
                out.push(format!(
                    "it needs the secret `{s}`: add `grants.secrets.{s} = {{ env = \"VAR\" }}` (or `{{ file = \"path\" }}`)"
                ));
            }
        }
        for (k, key) in &self.config {
            if key.required && !config.config.contains_key(k) {
                out.push(format!(
                    "its config needs `{k}`{}",
                    key.description
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ));
            }
        }
        if !self.config.is_empty() {
            for k in config.config.keys() {
                if !self.config.contains_key(k) {
                    let known: Vec<&str> = self.config.keys().map(String::as_str).collect();
                    out.push(format!(
                        "its config has no key `{k}` (it knows {})",
                        known.join(", ")
                    ));
                }
            }
        }
        out
    }
}

/// The manifest section of a component, if it has one.
pub fn read_manifest(bytes: &[u8]) -> Result<Option<Manifest>, String> {
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("is not a valid component: {e}"))?;
        match payload {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::CustomSection(c) if depth == 0 && c.name() == MANIFEST_SECTION => {
                let text = std::str::from_utf8(c.data())
                    .map_err(|_| "its manifest is not UTF-8".to_string())?;
                return Manifest::parse(text).map(Some);
            }
            _ => {}
        }
    }
    Ok(None)
}

/// `bytes` (a component) with `manifest` appended as its manifest section.
pub fn with_manifest(bytes: &[u8], manifest: &str) -> Result<Vec<u8>, String> {
    use wasm_encoder::ComponentSection;
    Manifest::parse(manifest)?;
    if read_manifest(bytes)?.is_some() {
        return Err("already has a manifest".into());
    }
    let mut out = bytes.to_vec();
    wasm_encoder::CustomSection {
        name: MANIFEST_SECTION.into(),
        data: manifest.as_bytes().into(),
    }
    .append_to_component(&mut out);
    Ok(out)
}

/// The signature file of a component: `FILE.sig`.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut p = component.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

const SIG_HEADER: &str = "sluice-signature-v1";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Reads a public key: base64 text, or `file:PATH` holding it.
pub fn public_key(text: &str, base: &Path) -> Result<VerifyingKey, String> {
    let raw = match text.strip_prefix("file:") {
        Some(p) => {
            let path = crate::config::resolve(base, Path::new(p));
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read public key `{}`: {e}", path.display()))?
        }
        None => text.to_string(),
    };
    let bytes = b64()
        .decode(raw.trim())
        .map_err(|_| format!("`{}` is not a base64 public key", raw.trim()))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an ed25519 public key is 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&arr).map_err(|e| format!("not an ed25519 public key: {e}"))
}

/// A new key pair: (secret key text, public key text).
pub fn generate_key() -> Result<(String, String), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    Ok((
        b64().encode(key.to_bytes()),
        b64().encode(key.verifying_key().to_bytes()),
    ))
}

/// Signs a component's bytes with a secret key (as `generate_key` writes
/// it); returns the signature file's text.
pub fn sign(bytes: &[u8], secret_key: &str) -> Result<String, String> {
    let seed = b64()
        .decode(secret_key.trim())
        .map_err(|_| "the secret key is not base64".to_string())?;
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| "an ed25519 secret key is 32 bytes".to_string())?;
    let key = SigningKey::from_bytes(&seed);
    let digest = Sha256::digest(bytes);
    let sig = key.sign(&digest);
    Ok(format!(
        "{SIG_HEADER}\nkey {}\nsha256 {}\nsignature {}\n",
        b64().encode(key.verifying_key().to_bytes()),
        crate::plugin::content_hash(bytes),
        b64().encode(sig.to_bytes())
    ))
}

/// Checks a signature file's text against a component's bytes; returns the
/// signer's public key (base64) when the signature is valid.
pub fn verify(bytes: &[u8], sig_text: &str) -> Result<String, String> {
    let mut lines = sig_text.lines();
    if lines.next() != Some(SIG_HEADER) {
        return Err(format!(
            "is not a Sluice signature (no `{SIG_HEADER}` line)"
        ));
    }
    let mut key = None;
    let mut sig = None;
    for l in lines {
        match l.split_once(' ') {
            Some(("key", v)) => key = Some(v.to_string()),
            Some(("signature", v)) => sig = Some(v.to_string()),
            _ => {}
        }
    }
    let key_text = key.ok_or("has no `key` line")?;
    let vk = public_key(&key_text, Path::new("."))?;
    let sig = b64()
        .decode(sig.ok_or("has no `signature` line")?.trim())
        .map_err(|_| "its signature is not base64".to_string())?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| "an ed25519 signature is 64 bytes".to_string())?;
    let digest = Sha256::digest(bytes);
    vk.verify(&digest, &Signature::from_bytes(&sig))
        .map_err(|_| {
            "does not match the component: the file was changed after it was signed, or signed with another key".to_string()
        })?;
    Ok(key_text)
}

/// Everything checked before a connector is compiled: signature (when
/// keys are required), manifest kind, capabilities and config. Returns the
/// manifest, if there is one.
pub fn check(
    config: &ConnectorConfig,
    kind: Kind,
    bytes: &[u8],
) -> Result<Option<Manifest>, String> {
    if !config.trusted_keys.is_empty() {
        let sig_path = signature_path(&config.path);
        let text = std::fs::read_to_string(&sig_path).map_err(|_| {
            format!(
                "is not signed (no `{}`), and the pipeline accepts only connectors signed by its `trusted_keys`",
                sig_path.display()
            )
        })?;
        let signer =
            verify(bytes, &text).map_err(|e| format!("signature `{}` {e}", sig_path.display()))?;
        let signer_key = public_key(&signer, &config.base_dir)?;
        let mut trusted = false;
        for k in &config.trusted_keys {
            if public_key(k, &config.base_dir)? == signer_key {
                trusted = true;
            }
        }
        if !trusted {
            return Err(format!(
                "is signed by key {signer}, which is not one of the pipeline's `trusted_keys`"
            ));
        }
        tracing::info!(path = %config.path.display(), key = %signer, "connector signature verified");
    }
    let manifest = read_manifest(bytes)?;
    if let Some(m) = &manifest {
        if m.kind != kind.as_str() {
            return Err(format!(
                "is a {} connector ({} {}), configured as the {}",
                m.kind,
                m.name,
                m.version,
                kind.as_str()
            ));
        }
        let missing = m.missing(config);
        if !missing.is_empty() {
            return Err(format!(
                "({} {}) cannot run with this pipeline: {}",
                m.name,
                m.version,
                missing.join("; ")
            ));
        }
        if !m.capabilities.http && !config.grants.http.is_empty() {
            tracing::warn!(connector = %m.name, "granted HTTP origins it does not ask for: remove `grants.http`");
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
name = "acme-crm"
version = "1.2.0"
kind = "source"
[capabilities]
http = true
secrets = ["token"]
[config.base_url]
required = true
description = "the API root"
"#;

    fn component() -> Vec<u8> {
        wat::parse_str("(component)").expect("wat")
    }

    #[test]
    fn manifest_round_trips_through_the_custom_section() {
        let c = component();
        assert_eq!(read_manifest(&c).expect("read"), None);
        let with = with_manifest(&c, MANIFEST).expect("add");
        let m = read_manifest(&with).expect("read").expect("some");
        assert_eq!((m.name.as_str(), m.kind.as_str()), ("acme-crm", "source"));
        assert!(with_manifest(&with, MANIFEST).is_err());
        let e = with_manifest(&c, "name = 1").expect_err("bad");
        assert!(e.starts_with("its manifest is not valid"), "{e}");
    }

    #[test]
    fn missing_grants_and_config_are_named() {
        let m = Manifest::parse(MANIFEST).expect("manifest");
        let mut cfg: ConnectorConfig =
            toml::from_str("path = \"x.wasm\"\nconfig = { page = 3 }").expect("config");
        let missing = m.missing(&cfg);
        assert_eq!(missing.len(), 4, "{missing:?}");
        assert!(missing[0].contains("`grants.http"));
        assert!(missing[1].contains("the secret `token`"));
        assert!(missing[2].contains("needs `base_url` (the API root)"));
        assert!(missing[3].contains("no key `page`"));
        cfg.grants.http.push("http://127.0.0.1:1".into());
        cfg.grants.secrets.insert(
            "token".into(),
            super::super::grants::SecretSpec::Value("x".into()),
        );
        cfg.config.clear();
        cfg.config.insert("base_url".into(), "http://x".into());
        assert!(m.missing(&cfg).is_empty());
    }

    #[test]
    fn signatures_verify_and_refuse_a_changed_file() {
        let (secret, public) = generate_key().expect("key");
        let c = component();
        let sig = sign(&c, &secret).expect("sign");
        assert_eq!(verify(&c, &sig).expect("verify"), public);
        let mut changed = c.clone();
        changed.push(0);
        let e = verify(&changed, &sig).expect_err("changed");
        assert!(e.contains("changed after it was signed"), "{e}");
        assert!(verify(&c, "garbage").is_err());
    }
}
