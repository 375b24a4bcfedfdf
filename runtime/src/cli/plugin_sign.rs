//! `sluice plugin inspect | keygen | sign | verify`: what a component is,
//! and whose it is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::connector::package;

/// `sluice plugin inspect FILE`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The component (`.wasm`).
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `sluice plugin keygen NAME`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Writes `NAME.key` (secret, mode 0600) and `NAME.pub`.
    pub name: PathBuf,
}

/// `sluice plugin sign FILE --key NAME.key`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The component (`.wasm`).
    pub file: PathBuf,
    /// The secret key file (`sluice plugin keygen`).
    #[arg(long)]
    pub key: PathBuf,
}

/// `sluice plugin verify FILE [--key PUB]...`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The component (`.wasm`); its signature is `FILE.sig`.
    pub file: PathBuf,
    /// Accept only these public keys (base64, or a `.pub` file). Without
    /// it, any valid signature passes and the signer's key is printed.
    #[arg(long = "key")]
    pub keys: Vec<String>,
}

/// The world-level imports and exports of a component.
fn interface_names(bytes: &[u8]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut depth = 0usize;
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.context("not a valid WebAssembly file")? {
            wasmparser::Payload::Version { encoding, .. }
                if depth == 0 && encoding == wasmparser::Encoding::Module =>
            {
                bail!("a core WebAssembly module, not a component: build it for wasm32-wasip2");
            }
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(r) if depth == 0 => {
                for i in r {
                    imports.push(i?.name.name.to_string());
                }
            }
            wasmparser::Payload::ComponentExportSection(r) if depth == 0 => {
                for e in r {
                    exports.push(e?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

fn kind_of(exports: &[String]) -> &'static str {
    let has = |p: &str| exports.iter().any(|e| e.starts_with(p));
    if has("sluice:plugin/transform@") {
        "transform (world `transformer`)"
    } else if has("sluice:plugin/source@") {
        "source connector (world `source-connector`)"
    } else if has("sluice:plugin/sink@") {
        "sink connector (world `sink-connector`)"
    } else {
        "not a Sluice plugin (no transform, source or sink export)"
    }
}

pub(super) fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read `{}`", args.file.display()))?;
    let (imports, exports) = interface_names(&bytes)?;
    let manifest = package::read_manifest(&bytes).map_err(anyhow::Error::msg)?;
    let sig_path = package::signature_path(&args.file);
    let signature = match std::fs::read_to_string(&sig_path) {
        Err(_) => "unsigned".to_string(),
        Ok(text) => match package::verify(&bytes, &text) {
            Ok(key) => format!("signed by {key} (valid)"),
            Err(e) => format!("INVALID: {} {e}", sig_path.display()),
        },
    };
    let sha = crate::plugin::content_hash(&bytes);
    if args.json {
        let v = serde_json::json!({
            "file": args.file,
            "sha256": sha,
            "size": bytes.len(),
            "kind": kind_of(&exports),
            "exports": exports,
            "imports": imports,
            "manifest": manifest,
            "signature": signature,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", args.file.display());
    println!("  kind:      {}", kind_of(&exports));
    println!("  sha256:    {sha} ({} bytes)", bytes.len());
    println!("  exports:   {}", exports.join(", "));
    println!("  imports:   {}", imports.join(", "));
    println!("  signature: {signature}");
    match manifest {
        None => println!("  manifest:  none (no `connector.toml` was built in)"),
        Some(m) => {
            println!("  manifest:  {} {} ({})", m.name, m.version, m.kind);
            if let Some(v) = &m.vendor {
                println!("  vendor:    {v}");
            }
            if let Some(d) = &m.description {
                println!("  about:     {d}");
            }
            let c = &m.capabilities;
            let mut asks = Vec::new();
            if c.http {
                asks.push("outbound HTTP (grants.http)".to_string());
            }
            if c.tcp {
                asks.push("TCP (grants.tcp)".to_string());
            }
            for s in &c.secrets {
                asks.push(format!("secret `{s}`"));
            }
            for s in &c.optional_secrets {
                asks.push(format!("secret `{s}` (optional)"));
            }
            println!(
                "  asks for:  {}",
                if asks.is_empty() {
                    "nothing".into()
                } else {
                    asks.join("; ")
                }
            );
            if !m.config.is_empty() {
                println!("  config:");
                for (k, key) in &m.config {
                    println!(
                        "    {k}{}{}",
                        if key.required { " (required)" } else { "" },
                        key.description
                            .as_deref()
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create `{}` (it must not exist)", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

pub(super) fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let (secret, public) = package::generate_key().map_err(anyhow::Error::msg)?;
    let key = args.name.with_extension("key");
    let publ = args.name.with_extension("pub");
    write_secret(&key, &format!("{secret}\n"))?;
    std::fs::write(&publ, format!("{public}\n"))
        .with_context(|| format!("cannot write `{}`", publ.display()))?;
    println!("secret key: {} (keep it private)", key.display());
    println!("public key: {} = {public}", publ.display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read `{}`", args.file.display()))?;
    interface_names(&bytes)?;
    let secret = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read the key `{}`", args.key.display()))?;
    let sig = package::sign(&bytes, &secret).map_err(anyhow::Error::msg)?;
    let path = package::signature_path(&args.file);
    std::fs::write(&path, &sig).with_context(|| format!("cannot write `{}`", path.display()))?;
    println!("signed: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read `{}`", args.file.display()))?;
    let path = package::signature_path(&args.file);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "`{}` is not signed (no `{}`)",
            args.file.display(),
            path.display()
        )
    })?;
    let signer = package::verify(&bytes, &text)
        .map_err(|e| anyhow::anyhow!("signature `{}` {e}", path.display()))?;
    if !args.keys.is_empty() {
        let signer_key =
            package::public_key(&signer, Path::new(".")).map_err(anyhow::Error::msg)?;
        let mut ok = false;
        for k in &args.keys {
            let text = if Path::new(k).is_file() {
                format!("file:{k}")
            } else {
                k.clone()
            };
            if package::public_key(&text, Path::new(".")).map_err(anyhow::Error::msg)? == signer_key
            {
                ok = true;
            }
        }
        if !ok {
            bail!(
                "`{}` is signed by {signer}, which is not one of the keys given",
                args.file.display()
            );
        }
    }
    println!("valid signature by {signer}");
    Ok(ExitCode::SUCCESS)
}
