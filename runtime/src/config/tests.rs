use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Pipeline, ConfigError> {
    Pipeline::parse(Path::new("/p/pipe.toml"), text, |n| {
        (n == "DATA").then(|| "/data".to_string())
    })
}

const MINIMAL: &str = r#"
[source]
type = "csv"
path = "in.csv"

[[transforms]]
name = "map"
plugin = "plugins/mapper.wasm"
config = { rename = { a = "b" } }

[sink]
type = "jsonl"
path = "${DATA}/out.jsonl"
"#;

#[test]
fn parses_a_minimal_pipeline_and_resolves_paths() {
    let p = parse(MINIMAL).expect("valid");
    assert_eq!(p.name, "pipe");
    assert_eq!(
        p.config.transforms[0].plugin,
        Path::new("/p/plugins/mapper.wasm")
    );
    assert_eq!(p.state_dir, Path::new("/p/.sluice"));
    assert_eq!(
        resolve(Path::new("/a/b"), Path::new("../../c/./d.wasm")),
        Path::new("/c/d.wasm")
    );
    assert_eq!(p.config.runtime.batch_size, 256);
    assert_eq!(
        toml_to_json(&p.config.transforms[0].config),
        r#"{"rename":{"a":"b"}}"#
    );
}

#[test]
fn unknown_keys_are_errors_with_line_and_column() {
    let text = MINIMAL.replace("path = \"in.csv\"", "path = \"in.csv\"\ndelimeter = \";\"");
    let err = parse(&text).expect_err("typo");
    let msg = err.to_string();
    assert!(
        msg.starts_with("/p/pipe.toml:5:1: unknown field `delimeter`"),
        "{msg}"
    );
}

#[test]
fn unknown_source_type_is_an_error() {
    let err = parse(&MINIMAL.replace("\"csv\"", "\"xls\"")).expect_err("bad type");
    let msg = err.to_string();
    assert!(
        msg.starts_with("/p/pipe.toml:3:8: unknown variant `xls`"),
        "{msg}"
    );
}

#[test]
fn missing_env_var_is_reported_where_it_is_used() {
    let err = parse(&MINIMAL.replace("${DATA}", "${NOPE}")).expect_err("unset");
    assert_eq!(
        err.to_string(),
        "/p/pipe.toml:13:9: environment variable `NOPE` is not set (use `${NOPE:-default}` for a default)"
    );
}

#[test]
fn refuses_duplicate_transform_names_and_zero_batch() {
    let dup = MINIMAL.replace(
        "[sink]",
        "[[transforms]]\nname = \"map\"\nplugin = \"x.wasm\"\n\n[sink]",
    );
    assert_eq!(
        parse(&dup).expect_err("dup").to_string(),
        "/p/pipe.toml: two transforms are named `map`: names must be unique"
    );
    let zero = format!("{MINIMAL}\n[runtime]\nbatch_size = 0\n");
    assert_eq!(
        parse(&zero).expect_err("zero").to_string(),
        "/p/pipe.toml: `runtime.batch_size` must be at least 1"
    );
}

#[test]
fn every_example_pipeline_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut found = 0;
    for entry in walk(&root) {
        if entry.extension().is_some_and(|e| e == "toml")
            && entry.to_string_lossy().contains("pipeline")
        {
            let text = std::fs::read_to_string(&entry).expect("readable");
            Pipeline::parse(&entry, &text, |_| None).unwrap_or_else(|e| panic!("{e}"));
            found += 1;
        }
    }
    assert!(found > 0, "no example pipelines under {}", root.display());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("target") && !p.ends_with(".sluice") {
                    out.extend(walk(&p));
                }
            } else {
                out.push(p);
            }
        }
    }
    out
}
