//! `sluice plugin new NAME --lang rust|python|js|c`: a plugin that builds and
//! passes its own sample test as generated.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::toolchain::Language;

/// Arguments of `sluice plugin new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin (and crate) name: lowercase letters, digits, `-` and `_`.
    name: String,
    /// Directory to create (default: `./NAME`).
    #[arg(long)]
    path: Option<PathBuf>,
    /// The language of the plugin.
    #[arg(long, value_enum, default_value_t = Language::Rust)]
    lang: Language,
    /// The Sluice Rust SDK to depend on (default: `$SLUICE_SDK_PATH`, else
    /// the SDK this `sluice` carries, written to
    /// `~/.cache/sluice/tools/sdk/rust-VERSION/`).
    #[arg(long)]
    sdk: Option<PathBuf>,
    /// What the plugin is: a transform, or a source or sink connector
    /// (Rust; sinks also in Python).
    #[arg(long, value_enum, default_value_t = Kind::Transform)]
    kind: Kind,
}

/// The kinds of plugin `sluice plugin new` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A transform (world `transformer`).
    Transform,
    /// A source connector (world `source-connector`).
    Source,
    /// A sink connector (world `sink-connector`).
    Sink,
}

fn sdk_path(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let Some(p) = arg.or_else(|| std::env::var_os("SLUICE_SDK_PATH").map(PathBuf::from)) else {
        return crate::toolchain::rust_sdk::ensure()
            .map_err(|e| anyhow::anyhow!("the Sluice Rust SDK: {e}"));
    };
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
    if args.kind != Kind::Transform {
        let kind = if args.kind == Kind::Source {
            "source"
        } else {
            "sink"
        };
        let sdk = match args.lang {
            Language::Rust => Some(sdk_path(args.sdk.clone())?),
            _ => None,
        };
        super::connector_new::write_connector(
            &dir,
            &args.name,
            kind,
            args.lang,
            sdk.as_deref(),
            &write,
        )?;
        println!(
            "created {} {kind} connector `{}` in {}",
            args.lang,
            args.name,
            dir.display()
        );
        println!();
        println!("  cd {}", dir.display());
        println!("  sluice plugin build");
        println!("  sluice plugin test     # the conformance kit");
        return Ok(ExitCode::SUCCESS);
    }
    match args.lang {
        Language::Rust => {
            let sdk = sdk_path(args.sdk)?;
            write_template(&dir, &args.name, &sdk)?;
        }
        Language::Python => write_python(&dir, &args.name)?,
        Language::Js => write_js(&dir, &args.name)?,
        Language::C => write_c(&dir, &args.name)?,
    }
    write_tests(&dir)?;
    write(
        &dir,
        "README.md",
        &format!(
            "# {name}\n\nA Sluice transform plugin in {lang}: it upper-cases the field named in its\nconfig (`field`, default `name`) and rejects records without it.\n\n```sh\nsluice plugin build          # writes build/{name}.wasm\nsluice plugin test           # builds, then runs every case in tests/\n```\n\nA test case is `input.jsonl` (sample records), `config.json` (the plugin's\nconfig) and `expected.jsonl` (the outcomes), in `tests/` or a directory below\nit. `sluice plugin test --update` rewrites `expected.jsonl` from the current\noutcomes. Use the component in a pipeline:\n\n```toml\n[[transforms]]\nname = \"{name}\"\nplugin = \"{name}/build/{name}.wasm\"\nconfig = {{ field = \"name\" }}\n```\n",
            name = args.name,
            lang = match args.lang {
                Language::Rust => "Rust",
                Language::Python => "Python",
                Language::Js => "JavaScript",
                Language::C => "C",
            }
        ),
    )?;
    println!(
        "created {} plugin `{}` in {}",
        args.lang,
        args.name,
        dir.display()
    );
    println!();
    println!("  cd {}", dir.display());
    println!("  sluice plugin build");
    println!("  sluice plugin test");
    Ok(ExitCode::SUCCESS)
}

/// The sample test every template passes as generated.
fn write_tests(dir: &Path) -> anyhow::Result<()> {
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
    )
}

fn write_python(dir: &Path, name: &str) -> anyhow::Result<()> {
    write(
        dir,
        "plugin.py",
        &format!(
            r#""""`{name}`: a Sluice transform plugin.

It upper-cases the field named in its config (`field`, default `name`)
and rejects records that do not have it.
"""

import sluice_sdk as sluice


class Plugin(sluice.Transform):
    def init(self, config):
        unknown = set(config) - {{"field"}}
        if unknown:
            raise sluice.InvalidConfig("unknown config key `%s`" % sorted(unknown)[0])
        self.field = config.get("field", "name")
        if not isinstance(self.field, str):
            raise sluice.InvalidConfig("`field` must be a string")

    def process(self, record):
        value = record.get(self.field)
        if not isinstance(value, str):
            return sluice.reject(
                "missing", "`%s` is missing or not text" % self.field, field=self.field
            )
        record[self.field] = value.upper()
        return sluice.KEEP
"#
        ),
    )?;
    write(dir, ".gitignore", "build/\n__pycache__/\n")
}

fn write_js(dir: &Path, name: &str) -> anyhow::Result<()> {
    write(
        dir,
        "plugin.js",
        &format!(
            r#"// `{name}`: a Sluice transform plugin.
//
// It upper-cases the field named in its config (`field`, default `name`)
// and rejects records that do not have it.

import {{ InvalidConfig, KEEP, reject }} from "sluice-sdk";

export default class Plugin {{
  init(config) {{
    for (const key of Object.keys(config)) {{
      if (key !== "field") throw new InvalidConfig(`unknown config key \`${{key}}\``);
    }}
    this.field = config.field ?? "name";
    if (typeof this.field !== "string") throw new InvalidConfig("`field` must be a string");
  }}

  process(record) {{
    const value = record.get(this.field);
    if (typeof value !== "string") {{
      return reject("missing", `\`${{this.field}}\` is missing or not text`, this.field);
    }}
    record.set(this.field, value.toUpperCase());
    return KEEP;
  }}
}}
"#
        ),
    )?;
    write(dir, ".gitignore", "build/\nnode_modules/\n")
}

fn write_c(dir: &Path, name: &str) -> anyhow::Result<()> {
    write(
        dir,
        "plugin.c",
        &format!(
            r#"/*
 * `{name}`: a Sluice transform plugin.
 *
 * It upper-cases the field named in its config (`field`, default `name`)
 * and rejects records that do not have it. ASCII letters only: use a
 * Unicode library for more.
 */
#include <ctype.h>

#include "sluice.h"

static const char *field = "name";

sluice_init_result sluice_plugin_init(const sluice_config *config) {{
    if (sluice_config_has(config, "field") && !sluice_config_string(config, "field", &field)) {{
        return sluice_invalid_config("`field` must be a string");
    }}
    return sluice_ready();
}}

sluice_outcome sluice_plugin_process(sluice_record *record) {{
    sluice_str value;
    if (!sluice_get_text(record, field, &value)) {{
        return sluice_reject_field("missing", field, sluice_printf("`%s` is missing or not text", field));
    }}
    char *upper = sluice_cstr(value);
    for (char *p = upper; *p; p++) *p = (char)toupper((unsigned char)*p);
    sluice_set(record, field, sluice_text(upper, value.len));
    return sluice_keep();
}}
"#
        ),
    )?;
    write(dir, ".gitignore", "build/\n")
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
    write(dir, ".gitignore", "target/\nbuild/\n")?;
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
