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
    write_files(&work.join("wit"), &[("plugin.wit", sdk_files::WIT)])?;
    let mut cmd = Command::new(tool);
    cmd.arg("-d")
        .arg(work.join("wit"))
        .args(["-w", "transformer", "componentize", "sluice_app"])
        .arg("-p")
        .arg(work.join("sdk"))
        .arg("-p")
        .arg(dir)
        .arg("-o")
        .arg(component)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run_tool(Language::Python, dir, &mut cmd)
}
