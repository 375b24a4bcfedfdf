//! JavaScript plugins: `plugin.js` (an ES module) plus the `sluice-sdk`
//! module, made a component by componentize-qjs (QuickJS, non-async ABI).

use std::path::Path;
use std::process::Command;

use super::{BuildError, COMPONENTIZE_QJS, Language, find_tool, run_tool, sdk_files, write_files};

/// The entry module: the plugin's default export behind the WIT export.
const ENTRY: &str = "import plugin from \"./plugin.js\";\n\
import { transformExport } from \"sluice-sdk/export.js\";\n\
export const transform = transformExport(plugin);\n";

pub(super) fn build(dir: &Path, component: &Path) -> Result<(), BuildError> {
    let tool = find_tool("js/node_modules/.bin", "componentize-qjs").ok_or_else(|| {
        BuildError::ToolMissing {
            tool: format!("componentize-qjs {COMPONENTIZE_QJS}"),
            lang: Language::Js,
            install: "sluice plugin setup js".into(),
        }
    })?;
    // A module root of the build's own: the plugin's sources, its
    // node_modules (linked) and the SDK as `sluice-sdk`.
    let root = dir.join("build/.sluice-js");
    copy_tree(dir, &root, dir, false)?;
    let modules = root.join("node_modules");
    std::fs::create_dir_all(&modules).map_err(|source| BuildError::Io {
        what: "cannot create",
        path: modules.clone(),
        source,
    })?;
    // The plugin's own packages, copied: componentize-qjs resolves links
    // and refuses modules outside the module root.
    let own = dir.join("node_modules");
    if own.is_dir() {
        copy_tree(&own, &modules, &own, true)?;
    }
    write_files(&modules.join("sluice-sdk"), sdk_files::JS)?;
    write_files(&root, &[("__sluice_main.js", ENTRY)])?;
    write_files(&root.join("wit"), &[("plugin.wit", sdk_files::WIT)])?;
    let mut cmd = Command::new(tool);
    cmd.arg("--wit")
        .arg(root.join("wit"))
        .arg("--js")
        .arg(root.join("__sluice_main.js"))
        .arg("--module-root")
        .arg(&root)
        .args(["--world", "transformer", "--sync"])
        .arg("-o")
        .arg(component);
    run_tool(Language::Js, dir, &mut cmd)
}

/// Copies the `.js`/`.mjs`/`.cjs`/`.json` files of a tree (not `build/` at
/// its top, dot-directories, or `node_modules/` unless `packages`).
fn copy_tree(from: &Path, to: &Path, top: &Path, packages: bool) -> Result<(), BuildError> {
    let entries = std::fs::read_dir(from).map_err(|source| BuildError::Io {
        what: "cannot read",
        path: from.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let name = e.file_name();
        let name_s = name.to_string_lossy();
        let path = e.path();
        if path.is_dir() {
            if name_s.starts_with('.')
                || (name_s == "node_modules" && !packages)
                || (from == top && name_s == "build" && !packages)
            {
                continue;
            }
            copy_tree(&path, &to.join(&name), top, packages)?;
        } else if [".js", ".mjs", ".cjs", ".json"]
            .iter()
            .any(|ext| name_s.ends_with(ext))
        {
            std::fs::create_dir_all(to).map_err(|source| BuildError::Io {
                what: "cannot create",
                path: to.to_path_buf(),
                source,
            })?;
            let bytes = std::fs::read(&path).map_err(|source| BuildError::Io {
                what: "cannot read",
                path: path.clone(),
                source,
            })?;
            super::write_if_changed(&to.join(&name), &bytes)?;
        }
    }
    Ok(())
}
