#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn c_bindings_are_generated() {
    let files = c::bindings().unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"transformer.h"), "{names:?}");
    assert!(names.contains(&"transformer.c"), "{names:?}");
    assert!(names.contains(&"transformer_component_type.o"), "{names:?}");
    if let Ok(dir) = std::env::var("SLUICE_DUMP_C_BINDINGS") {
        for (n, b) in &files {
            std::fs::write(Path::new(&dir).join(n), b).unwrap();
        }
    }
}

#[test]
fn the_language_is_told_from_the_entry_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(detect(dir.path()), Err(BuildError::Unknown(_))));
    std::fs::write(dir.path().join("plugin.js"), "").unwrap();
    assert_eq!(detect(dir.path()).unwrap(), Language::Js);
    std::fs::write(dir.path().join("plugin.c"), "").unwrap();
    let err = detect(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("plugin.js (js), plugin.c (c)") && err.contains("pass `--lang`"),
        "{err}"
    );
}

#[test]
fn the_plugin_name_is_the_crate_or_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("My Plugin.v2");
    std::fs::create_dir(&p).unwrap();
    assert_eq!(plugin_name(&p, Language::Python), "my-plugin-v2");
    std::fs::write(
        p.join("Cargo.toml"),
        "[package]\nname = \"crm-clean\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    assert_eq!(plugin_name(&p, Language::Rust), "crm-clean");
    std::fs::write(p.join("package.json"), r#"{"name": "@acme/Order-Fix"}"#).unwrap();
    assert_eq!(plugin_name(&p, Language::Js), "order-fix");
    std::fs::write(p.join("pyproject.toml"), "[project]\nname = \"crm_py\"\n").unwrap();
    assert_eq!(plugin_name(&p, Language::Python), "crm_py");
}

#[test]
fn cargo_messages_give_the_built_component() {
    let msgs = br#"{"reason":"compiler-artifact","filenames":["/t/deps/libx.rlib"]}
{"reason":"compiler-artifact","filenames":["/t/wasm32-wasip2/release/x.wasm","/t/x.rlib"]}
{"reason":"build-finished","success":true}"#;
    assert_eq!(
        rust::artifact(msgs),
        Some(PathBuf::from("/t/wasm32-wasip2/release/x.wasm"))
    );
    assert_eq!(rust::artifact(b"{}"), None);
}
