//! Python plugins: `plugin.py` plus the SDK, made a component by
//! componentize-py (which embeds CPython: megabytes, seconds to compile —
//! the host's precompiled cache makes later loads fast).

use std::path::Path;
use std::process::Command;

use super::{BuildError, COMPONENTIZE_PY, Language, find_tool, run_tool, sdk_files, write_files};

pub(super) fn build(dir: &Path, component: &Path) -> Result<(), BuildError> {
    let tool = find_tool("py/bin", "componentize-py").ok_or_else(|| BuildError::ToolMissing {
        tool: format!("componentize-py {COMPONENTIZE_PY}"),
        lang: Language::Python,
        install: "sluice plugin setup python".into(),
    })?;
    let work = dir.join("build/.sluice-python");
    write_files(&work.join("sdk"), sdk_files::PYTHON)?;
    // A connector (its `connector.toml` says the kind) builds against its
    // world, with the app module that implements it.
    let (world, app) = match super::connector_kind(dir)? {
        Some(crate::connector::Kind::Sink) => ("sink-connector", "sluice_sink_app"),
        Some(crate::connector::Kind::Source) => ("source-connector", "sluice_source_app"),
        None => ("transformer", "sluice_app"),
    };
    let wit = work.join("wit");
    let _ = std::fs::remove_dir_all(&wit);
    if world == "transformer" {
        write_files(&wit, &[("plugin.wit", sdk_files::WIT)])?;
    } else {
        write_files(&wit, sdk_files::CONNECTOR_WIT)?;
    }
    let mut cmd = Command::new(tool);
    cmd.arg("-d")
        .arg(&wit)
        .args(["-w", world, "componentize", app])
        .arg("-p")
        .arg(work.join("sdk"))
        .arg("-p")
        .arg(dir)
        .arg("-o")
        .arg(component)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run_tool(Language::Python, dir, &mut cmd)
}
