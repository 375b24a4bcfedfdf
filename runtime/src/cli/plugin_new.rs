//! `sluice plugin new NAME`: a Rust plugin crate that builds as it is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

/// Arguments of `sluice plugin new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin (and crate) name: lowercase letters, digits, `-` and `_`.
    name: String,
    /// Directory to create (default: `./NAME`).
    #[arg(long)]
    path: Option<PathBuf>,
    /// The Sluice Rust SDK to depend on (default: `$SLUICE_SDK_PATH`, else
    /// the SDK of the tree this `sluice` was built from).
    #[arg(long)]
    sdk: Option<PathBuf>,
}

const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/rust");

fn sdk_path(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let p = arg
        .or_else(|| std::env::var_os("SLUICE_SDK_PATH").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(BUILT_FROM_SDK));
    if !p.join("Cargo.toml").is_file() {
        bail!(
            "the Sluice Rust SDK is not at `{}`: pass `--sdk PATH/TO/sluice/sdk/rust` or set SLUICE_SDK_PATH",
            p.display()
        );
    }
    Ok(std::fs::canonicalize(&p).unwrap_or(p))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

pub(super) fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    if !valid_name(&args.name) {
        bail!(
            "`{}` is not a valid plugin name: use lowercase letters, digits, `-` and `_`, starting with a letter",
            args.name
        );
    }
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("`{}` already exists and is not empty", dir.display());
    }
    let sdk = sdk_path(args.sdk)?;
    write_template(&dir, &args.name, &sdk)?;
    let wasm = format!(
        "target/wasm32-wasip2/release/{}.wasm",
        args.name.replace('-', "_")
    );
    println!("created plugin `{}` in {}", args.name, dir.display());
    println!();
    println!("  cd {}", dir.display());
    println!("  cargo build --release --target wasm32-wasip2");
    println!(
        "  sluice plugin test {wasm} --input tests/input.jsonl --config tests/config.json --expect tests/expected.jsonl"
    );
    Ok(ExitCode::SUCCESS)
}

fn write(dir: &Path, rel: &str, text: &str) -> anyhow::Result<()> {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    std::fs::write(&p, text).with_context(|| format!("cannot write `{}`", p.display()))
}

/// Writes the template crate.
pub fn write_template(dir: &Path, name: &str, sdk: &Path) -> anyhow::Result<()> {
    let ty = type_name(name);
    let sdk = sdk.display().to_string().replace('\\', "/");
    write(
        dir,
        "Cargo.toml",
        &format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
sluice-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}

[profile.release]
strip = true

# A plugin is its own workspace, even inside another project's tree.
[workspace]
"#
        ),
    )?;
    write(
        dir,
        "src/lib.rs",
        &format!(
            r#"//! `{name}`: a Sluice transform plugin.
//!
//! It upper-cases the field named in its config (`field`, default `name`)
//! and rejects records that do not have it.

use serde::Deserialize;
use sluice_sdk::{{Config, InitError, Outcome, Record, Transform}};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {{
    #[serde(default = "default_field")]
    field: String,
}}

fn default_field() -> String {{
    "name".into()
}}

pub struct {ty} {{
    field: String,
}}

impl Transform for {ty} {{
    fn init(config: Config) -> Result<Self, InitError> {{
        let settings: Settings = config.parse()?;
        Ok({ty} {{ field: settings.field }})
    }}

    fn process<'a>(&mut self, record: &mut Record<'a>) -> Outcome<'a> {{
        let Some(text) = record.get_str(&self.field) else {{
            return Outcome::reject_field("missing", self.field.clone(), format!("`{{}}` is missing or not text", self.field));
        }};
        let upper = text.to_uppercase();
        record.set(self.field.clone(), upper);
        Outcome::Keep
    }}
}}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export!({ty});
"#
        ),
    )?;
    write(dir, "tests/config.json", "{\"field\": \"name\"}\n")?;
    write(
        dir,
        "tests/input.jsonl",
        "{\"id\": 1, \"name\": \"ada\"}\n{\"id\": 2}\n",
    )?;
    write(
        dir,
        "tests/expected.jsonl",
        "{\"outcome\":\"keep\",\"record\":{\"id\":1,\"name\":\"ADA\"}}\n{\"outcome\":\"reject\",\"code\":\"missing\",\"field\":\"name\",\"message\":\"`name` is missing or not text\"}\n",
    )?;
    write(dir, ".gitignore", "target/\n")?;
    write(
        dir,
        "README.md",
        &format!(
            "# {name}\n\nA Sluice transform plugin.\n\n```sh\ncargo build --release --target wasm32-wasip2\nsluice plugin test target/wasm32-wasip2/release/{}.wasm \\\n  --input tests/input.jsonl --config tests/config.json --expect tests/expected.jsonl\n```\n\nAdd `--update` to rewrite `tests/expected.jsonl` from the current outcomes.\n",
            name.replace('-', "_")
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_turned_into_types() {
        assert!(valid_name("clean-crm_2"));
        assert!(!valid_name("Clean"));
        assert!(!valid_name("2x"));
        assert!(!valid_name("a b"));
        assert_eq!(type_name("clean-crm_2"), "CleanCrm2");
    }
}
