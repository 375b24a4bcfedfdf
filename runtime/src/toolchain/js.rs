//! JavaScript plugins: `plugin.js` (an ES module) plus the `sluice-sdk`
//! module, made a component by componentize-qjs (QuickJS, non-async ABI).

use std::path::Path;
use std::process::Command;

use super::{BuildError, COMPONENTIZE_QJS, Language, find_tool, run_tool, sdk_files, write_files};

/// The entry module of a transform: the plugin's default export behind the
/// WIT export.
const ENTRY: &str = "import plugin from \"./plugin.js\";\n\
import { transformExport } from \"sluice-sdk/export.js\";\n\
export const transform = transformExport(plugin);\n";

/// The entry module of a source connector.
const SOURCE_ENTRY: &str = "import plugin from \"./plugin.js\";\n\
import { sourceExport } from \"sluice-sdk/connector.js\";\n\
export const source = sourceExport(plugin);\n";

/// The entry module of a sink connector.
const SINK_ENTRY: &str = "import plugin from \"./plugin.js\";\n\
import { sinkExport } from \"sluice-sdk/connector.js\";\n\
export const sink = sinkExport(plugin);\n";

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
    // A connector (its `connector.toml` says the kind) builds against its
    // world, with the WASI packages that world imports.
    let (world, entry) = match super::connector_kind(dir)? {
        Some(crate::connector::Kind::Source) => ("source-connector", SOURCE_ENTRY),
        Some(crate::connector::Kind::Sink) => ("sink-connector", SINK_ENTRY),
        None => ("transformer", ENTRY),
    };
    write_files(&root, &[("__sluice_main.js", entry)])?;
    let wit = root.join("wit");
    let _ = std::fs::remove_dir_all(&wit);
    if world == "transformer" {
        write_files(&wit, &[("plugin.wit", sdk_files::WIT)])?;
    } else {
        // Without the `wasi:http` import: componentize-qjs 0.4.5 cannot
        // pre-initialize a component importing it (its stubs of the WASI
        // resources clash), and the SDK's `http.js` uses `http-client`.
        let files: Vec<(&str, String)> = sdk_files::CONNECTOR_WIT
            .iter()
            .map(|(path, text)| {
                let text = if *path == "connector.wit" {
                    text.replace("    import wasi:http/outgoing-handler@0.2.12;\n", "")
                } else {
                    text.to_string()
                };
                (*path, text)
            })
            .collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        write_files(&wit, &refs)?;
    }
    let mut cmd = Command::new(tool);
    cmd.arg("--wit")
        .arg(root.join("wit"))
        .arg("--js")
        .arg(root.join("__sluice_main.js"))
        .arg("--module-root")
        .arg(&root)
        .args(["--world", world, "--sync"])
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
