//! `sluice plugin build [DIR]` and `sluice plugin setup [LANG...]`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::toolchain::{self, Language};

/// Arguments of `sluice plugin build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The plugin directory (default: the current directory).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The language, when the directory's files do not tell.
    #[arg(long, value_enum)]
    lang: Option<Language>,
}

/// Arguments of `sluice plugin setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Languages to install the tools of (default: all).
    #[arg(value_enum)]
    langs: Vec<Language>,
}

pub(super) fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let built = toolchain::build(&args.dir, args.lang)?;
    let size = std::fs::metadata(&built.component).map_or(0, |m| m.len());
    eprintln!(
        "built {} plugin `{}` in {:.1}s: {} ({} KiB)",
        built.lang,
        built.name,
        built.took.as_secs_f64(),
        built.component.display(),
        size.div_ceil(1024)
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn setup(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let langs = if args.langs.is_empty() {
        Language::ALL.to_vec()
    } else {
        args.langs
    };
    for lang in langs {
        eprintln!("{}", toolchain::setup(lang)?);
    }
    Ok(ExitCode::SUCCESS)
}
