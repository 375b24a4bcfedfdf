//! C plugins: `plugin.c` (and any other `.c` files of the directory) plus
//! `sluice.c`/`sluice.h` and bindings generated here by the wit-bindgen C
//! generator, compiled by Debian's clang-19 against wasi-libc into a core
//! module, then made a component here with the WASI preview1 adapter.

use std::path::{Path, PathBuf};
use std::process::Command;

use wit_bindgen_core::wit_parser::Resolve;

use super::{BuildError, CLANG, Language, run_tool, sdk_files, write_files, write_if_changed};

/// Where Debian's wasi-libc puts its headers and libraries.
const SYSROOT: &str = "/usr";
const TRIPLE: &str = "wasm32-wasi";

/// The C bindings of the `transformer` world: (file name, contents).
pub(crate) fn bindings() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut resolve = Resolve::default();
    let pkg = resolve.push_str("plugin.wit", sdk_files::WIT)?;
    let world = resolve.select_world(&[pkg], Some("transformer"))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    Ok(files
        .iter()
        .map(|(n, b)| (n.to_string(), b.to_vec()))
        .collect())
}

fn missing(tool: &str) -> BuildError {
    BuildError::ToolMissing {
        tool: tool.into(),
        lang: Language::C,
        install: "sluice plugin setup c".into(),
    }
}

pub(super) fn build(dir: &Path, component: &Path) -> Result<(), BuildError> {
    let clang = which::which(CLANG).map_err(|_| missing("clang-19 (Debian package clang-19)"))?;
    if which::which("wasm-ld-19").is_err() && which::which("wasm-ld").is_err() {
        return Err(missing("wasm-ld (Debian package lld-19)"));
    }
    let sysroot_lib = Path::new(SYSROOT).join("lib").join(TRIPLE);
    if !sysroot_lib.join("libc.a").is_file() {
        return Err(missing("wasi-libc (Debian package wasi-libc)"));
    }
    let work = dir.join("build/.sluice-c");
    write_files(&work, sdk_files::C)?;
    let generated = bindings().map_err(|e| BuildError::Componentize {
        module: work.clone(),
        reason: format!("generating the C bindings: {e:#}"),
    })?;
    for (name, bytes) in &generated {
        write_if_changed(&work.join(name), bytes)?;
    }
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| BuildError::Io {
            what: "cannot read",
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    let module = work.join("module.wasm");
    let mut cmd = Command::new(clang);
    cmd.arg(format!("--target={TRIPLE}"))
        .arg(format!("--sysroot={SYSROOT}"))
        .args([
            "-O2",
            "-std=c11",
            "-mexec-model=reactor",
            "-Wall",
            "-Werror=implicit-function-declaration",
        ])
        .arg("-I")
        .arg(&work)
        .arg("-I")
        .arg(dir)
        .args(&sources)
        .arg(work.join("sluice.c"))
        .arg(work.join("transformer.c"))
        .arg(work.join("transformer_component_type.o"))
        .arg("-o")
        .arg(&module);
    run_tool(Language::C, dir, &mut cmd)?;
    componentize(&module, component)
}

/// Turns a core module (wasi preview1) into a component.
pub(crate) fn componentize(module: &Path, component: &Path) -> Result<(), BuildError> {
    let bytes = std::fs::read(module).map_err(|source| BuildError::Io {
        what: "cannot read",
        path: module.to_path_buf(),
        source,
    })?;
    let err = |e: anyhow::Error| BuildError::Componentize {
        module: module.to_path_buf(),
        reason: format!("{e:#}"),
    };
    let encoded = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&bytes)
        .map_err(err)?
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(err)?
        .encode()
        .map_err(err)?;
    write_if_changed(component, &encoded)
}
