//! Plugins in Rust, Python, JavaScript and C: the example cleansing plugin
//! (examples/plugins/) gives the same outcomes in all four, inside the real
//! `sluice` binary; every `sluice plugin new` template builds and passes its
//! own test; exceptions and build errors are reported clearly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::common::*;

const LANGS: [&str; 4] = ["rust", "python", "js", "c"];

/// `sluice plugin build DIR`.
fn plugin_build(dir: &Path) -> std::process::Output {
    sluice()
        .args(["plugin", "build"])
        .arg(dir)
        .output()
        .unwrap()
}

/// `sluice plugin test COMPONENT --input FILE`.
fn plugin_test(component: &Path, input: &Path) -> std::process::Output {
    sluice()
        .args(["plugin", "test"])
        .arg(component)
        .arg("--input")
        .arg(input)
        .output()
        .unwrap()
}

/// Builds `examples/plugins/LANG` once per test binary; returns the component.
fn example(lang: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let map = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap();
    if let Some(p) = map.get(lang) {
        return p.clone();
    }
    let dir = root().join("examples/plugins").join(lang);
    let out = plugin_build(&dir);
    assert!(out.status.success(), "building {lang}: {}", stderr(&out));
    let name = if lang == "rust" {
        "customer-cleanse"
    } else {
        lang
    };
    let wasm = dir.join("build").join(format!("{name}.wasm"));
    assert!(
        wasm.is_file(),
        "{} missing: {}",
        wasm.display(),
        stderr(&out)
    );
    map.insert(lang.to_string(), wasm.clone());
    wasm
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("examples/plugins/cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.jsonl").is_file())
        .collect();
    v.sort();
    assert!(v.len() >= 2, "{v:?}");
    v
}

fn outcomes(component: &Path, case: &Path) -> String {
    let out = sluice()
        .args(["plugin", "test"])
        .arg(component)
        .arg("--input")
        .arg(case.join("input.jsonl"))
        .arg("--config")
        .arg(case.join("config.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn the_example_plugin_gives_identical_outcomes_in_rust_python_js_and_c() {
    for case in cases() {
        let golden = std::fs::read_to_string(case.join("expected.jsonl")).unwrap();
        assert!(golden.lines().count() >= 20);
        for lang in LANGS {
            let got = outcomes(&example(lang), &case);
            assert_eq!(
                got,
                golden,
                "{lang} differs from {}",
                case.join("expected.jsonl").display()
            );
        }
    }
    // And each language's directory passes `sluice plugin test` as a plugin
    // author runs it (build, then every case under tests/).
    for lang in LANGS {
        example(lang);
        let out = sluice()
            .args(["plugin", "test"])
            .arg(root().join("examples/plugins").join(lang))
            .output()
            .unwrap();
        assert!(out.status.success(), "{lang}: {}", stderr(&out));
        assert_eq!(stderr(&out).matches("ok: 23 outcomes match").count(), 2);
    }
}

/// The plain records of the default case (not the envelope lines).
fn plain_records() -> String {
    std::fs::read_to_string(root().join("examples/plugins/cases/default/input.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"fields\""))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_example_plugin_runs_in_a_pipeline_in_every_language_with_the_same_result() {
    let mut results = Vec::new();
    for lang in LANGS {
        let dir = Dir::new();
        dir.write("in/customers.jsonl", plain_records());
        dir.write(
            "pipeline.toml",
            format!(
                r#"
[source]
type = "jsonl"
path = "in/customers.jsonl"

[[transforms]]
name = "cleanse"
plugin = "{}"
config = {{ default_country = "FR", min_age = 21 }}

[sink]
type = "sqlite"
path = "out/crm.db"
table = "customers"
key = ["id"]

[dead_letter]
type = "jsonl"
path = "out/dead.jsonl"

[runtime]
batch_size = 4
"#,
                example(lang).display()
            ),
        );
        let (out, s) = dir.run(&["--no-progress"]);
        let s = assert_balanced(&out, &s);
        assert_eq!(
            (
                s["records_in"].as_u64(),
                s["written"].as_u64(),
                s["dropped"].as_u64(),
                s["dead_lettered"].as_u64()
            ),
            (Some(20), Some(5), Some(1), Some(14)),
            "{lang}: {s}"
        );
        let rows = dir.sql(
            "out/crm.db",
            "SELECT id, name, email, country, age, phone FROM customers ORDER BY id",
        );
        let dead: Vec<String> = dir
            .jsonl("out/dead.jsonl")
            .iter()
            .map(|d| {
                format!(
                    "{} {} {} {}",
                    d["position"].as_str().unwrap(),
                    d["code"].as_str().unwrap(),
                    d["field"].as_str().unwrap_or("-"),
                    d["message"].as_str().unwrap()
                )
            })
            .collect();
        results.push((lang, rows, dead));
    }
    let (_, rows, dead) = &results[0];
    assert_eq!(
        rows[..2],
        [
            "1|Ada Lovelace|ada@analytical.org|GB|36|442079460958",
            "2|Grace Hopper|grace.hopper@navy.mil|FR|85|5550104477"
        ]
    );
    assert!(
        dead.contains(&"line 11 underage age age 12 is below the minimum of 21".to_string()),
        "{dead:?}"
    );
    for (lang, r, d) in &results[1..] {
        assert_eq!(r, rows, "{lang}: rows differ from rust");
        assert_eq!(d, dead, "{lang}: dead letters differ from rust");
    }
}

#[test]
fn every_template_builds_and_passes_its_own_test_as_generated() {
    let dir = Dir::new();
    for lang in LANGS {
        let name = format!("my-{lang}-plugin");
        let out = sluice()
            .current_dir(dir.tmp.path())
            .args(["plugin", "new", &name, "--lang", lang])
            .output()
            .unwrap();
        assert!(out.status.success(), "{lang}: {}", stderr(&out));
        let out = sluice()
            .current_dir(dir.path(&name))
            .args(["plugin", "test"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{lang}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("ok: 2 outcomes match"),
            "{lang}: {}",
            stderr(&out)
        );
        assert!(dir.path(&format!("{name}/build/{name}.wasm")).is_file());
    }
}

/// Builds a plugin directory with these files; returns the component.
fn build(dir: &Dir, name: &str, files: &[(&str, &str)]) -> PathBuf {
    for (f, text) in files {
        dir.write(&format!("{name}/{f}"), text);
    }
    let out = plugin_build(&dir.path(name));
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    dir.path(&format!("{name}/build/{name}.wasm"))
}

const RAISING_PY: &str = r#"
import sluice_sdk as sluice

class Plugin(sluice.Transform):
    def process(self, record):
        if record["poison"]:
            raise ValueError("cannot handle record %d" % record["i"])
        return sluice.KEEP
"#;

const THROWING_JS: &str = r#"
import { KEEP } from "sluice-sdk";
export default {
  process(record) {
    if (record.get("poison")) throw new TypeError(`cannot handle record ${record.get("i")}`);
    return KEEP;
  },
};
"#;

#[test]
fn a_python_exception_and_a_js_throw_dead_letter_the_batch_with_the_message() {
    let plugins = Dir::new();
    let py = build(&plugins, "raising", &[("plugin.py", RAISING_PY)]);
    let js = build(&plugins, "throwing", &[("plugin.js", THROWING_JS)]);
    for (component, expect) in [
        (
            py,
            "ValueError: cannot handle record 3 (at plugin.py:7 in process)",
        ),
        (js, "TypeError: cannot handle record 3"),
    ] {
        let dir = Dir::new();
        let input: String = (1..=6)
            .map(|i| format!("{{\"i\":{i},\"poison\":{}}}\n", i == 3))
            .collect();
        dir.write("in/r.jsonl", input);
        dir.write(
            "pipeline.toml",
            format!(
                "[source]\ntype = \"jsonl\"\npath = \"in/r.jsonl\"\n\n[[transforms]]\nname = \"fragile\"\nplugin = \"{}\"\n\n[sink]\ntype = \"jsonl\"\npath = \"out/r.jsonl\"\n\n[dead_letter]\ntype = \"jsonl\"\npath = \"out/dead.jsonl\"\n\n[runtime]\nbatch_size = 2\n",
                component.display()
            ),
        );
        let (out, s) = dir.run(&["--no-progress"]);
        let s = assert_balanced(&out, &s);
        assert_eq!(
            (s["written"].as_u64(), s["dead_lettered"].as_u64()),
            (Some(4), Some(2)),
            "{s}"
        );
        let written: Vec<i64> = dir
            .jsonl("out/r.jsonl")
            .iter()
            .map(|v| v["i"].as_i64().unwrap())
            .collect();
        assert_eq!(written, [1, 2, 5, 6]);
        let dead = dir.jsonl("out/dead.jsonl");
        assert_eq!(dead.len(), 2);
        for d in &dead {
            assert_eq!(d["reason"], "plugin_failed");
            let msg = d["message"].as_str().unwrap();
            assert!(msg.contains(expect), "{msg}");
            assert!(msg.contains("plugin `fragile`"), "{msg}");
        }
    }
}

#[test]
fn a_wrong_config_stops_the_start_with_the_key_in_every_language() {
    for lang in LANGS {
        let out = sluice()
            .args(["plugin", "test"])
            .arg(example(lang))
            .arg("--input")
            .arg(root().join("examples/plugins/cases/default/input.jsonl"))
            .arg("--config")
            .arg(write_config(r#"{"min_age": 18, "bogus": 1}"#))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{lang}");
        let err = stderr(&out);
        assert!(
            err.contains("invalid config") && err.contains("unknown field `bogus`"),
            "{lang}: {err}"
        );
    }
}

fn write_config(text: &str) -> PathBuf {
    static DIR: OnceLock<Dir> = OnceLock::new();
    let dir = DIR.get_or_init(Dir::new);
    dir.write("config.json", text)
}

#[test]
fn build_errors_say_what_and_where() {
    let dir = Dir::new();
    // Not a plugin directory.
    std::fs::create_dir_all(dir.path("empty")).unwrap();
    let out = plugin_build(&dir.path("empty"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a plugin directory: it has none of Cargo.toml (Rust), plugin.py (Python), plugin.js (JavaScript), plugin.c (C)"),
        "{}",
        stderr(&out)
    );
    // Two languages at once.
    dir.write("both/plugin.py", "");
    dir.write("both/plugin.js", "");
    let out = plugin_build(&dir.path("both"));
    assert!(stderr(&out).contains("pass `--lang`"), "{}", stderr(&out));
    // A C compile error names the file and line.
    dir.write(
        "broken-c/plugin.c",
        "#include \"sluice.h\"\nsluice_outcome sluice_plugin_process(sluice_record *r) {\n  return nope(r);\n}\n",
    );
    let out = plugin_build(&dir.path("broken-c"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("building the c plugin") && err.contains("plugin.c:3") && err.contains("nope"),
        "{err}"
    );
    // A Python syntax error names the file and line.
    dir.write(
        "broken-py/plugin.py",
        "import sluice_sdk\n\ndef process(record)\n    return None\n",
    );
    let out = plugin_build(&dir.path("broken-py"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("building the python plugin")
            && err.contains("SyntaxError")
            && err.contains("line 3"),
        "{err}"
    );
    // `--update` on a component needs the file it writes.
    let out = sluice()
        .args(["plugin", "test"])
        .arg(example("c"))
        .args(["--input", "in.jsonl", "--update"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`--update` writes the `--expect FILE`: give it"),
        "{}",
        stderr(&out)
    );
    // A missing tool names the command that installs it.
    let out = sluice()
        .env("SLUICE_TOOLS", dir.path("no-tools"))
        .env("PATH", "/nonexistent")
        .args(["plugin", "build"])
        .arg(root().join("examples/plugins/python"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("componentize-py 0.25.1 is needed to build python plugins and is not installed: run `sluice plugin setup python`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_sdk_handles_the_whole_record_api_identically() {
    for lang in ["python", "js", "c"] {
        let out = sluice()
            .args(["plugin", "test"])
            .arg(root().join("tests/fixtures/sdk-conformance").join(lang))
            .output()
            .unwrap();
        assert!(out.status.success(), "{lang}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("ok: 6 outcomes match"),
            "{lang}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn plugins_import_their_own_modules_and_packages() {
    let dir = Dir::new();
    let js = build(
        &dir,
        "padder",
        &[
            (
                "node_modules/left-pad-lite/package.json",
                r#"{"name":"left-pad-lite","type":"module","main":"index.js"}"#,
            ),
            (
                "node_modules/left-pad-lite/index.js",
                "export default function pad(s, n) { return String(s).padStart(n, \"0\"); }\n",
            ),
            ("lib/util.js", "export const suffix = \"!\";\n"),
            (
                "plugin.js",
                "import pad from \"left-pad-lite\";\nimport { suffix } from \"./lib/util.js\";\nimport { KEEP } from \"sluice-sdk\";\nexport default { process(r) { r.set(\"id\", pad(r.get(\"id\"), 6) + suffix); return KEEP; } };\n",
            ),
        ],
    );
    // A second build reuses the build directory.
    let again = plugin_build(&dir.path("padder"));
    assert!(again.status.success(), "{}", stderr(&again));
    let py = build(
        &dir,
        "shouter",
        &[
            ("helper.py", "def shout(s):\n    return s.upper() + \"!\"\n"),
            (
                "plugin.py",
                "import sluice_sdk as sluice\nfrom helper import shout\n\ndef process(r):\n    r[\"id\"] = shout(str(r[\"id\"]))\n    return sluice.KEEP\n",
            ),
        ],
    );
    let input = dir.write("in.jsonl", "{\"id\": 42}\n");
    for (component, want) in [(js, "000042!"), (py, "42!")] {
        let out = plugin_test(&component, &input);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).trim(),
            format!("{{\"outcome\":\"keep\",\"record\":{{\"id\":\"{want}\"}}}}")
        );
    }
}

/// The code blocks of a Markdown file with this fence language.
fn code_blocks(file: &str, lang: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find(&fence) {
        let body = &rest[i + fence.len()..];
        let end = body.find("```").unwrap();
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

#[test]
fn the_plugins_shown_in_the_docs_build_and_do_what_the_docs_say() {
    let dir = Dir::new();
    // docs/plugins.md: "the smallest plugin" trims a field, in three languages.
    let input = dir.write("trim.jsonl", "{\"name\": \"  ada  \", \"x\": 1}\n");
    for (lang, file) in [
        ("python", "plugin.py"),
        ("js", "plugin.js"),
        ("c", "plugin.c"),
    ] {
        let code = code_blocks("docs/plugins.md", lang).remove(0);
        let component = build(&dir, &format!("doc-{lang}"), &[(file, &code)]);
        let out = plugin_test(&component, &input);
        assert!(out.status.success(), "{lang}: {}", stderr(&out));
        assert_eq!(
            stdout(&out).trim(),
            r#"{"outcome":"keep","record":{"name":"ada","x":1}}"#,
            "{lang}"
        );
    }
    // Each SDK README's first example rejects ages under 18.
    let input = dir.write("ages.jsonl", "{\"age\": 12}\n{\"age\": 40}\n");
    for (lang, file) in [
        ("python", "plugin.py"),
        ("js", "plugin.js"),
        ("c", "plugin.c"),
    ] {
        let code = code_blocks(&format!("sdk/{lang}/README.md"), lang).remove(0);
        let component = build(&dir, &format!("readme-{lang}"), &[(file, &code)]);
        let out = plugin_test(&component, &input);
        assert!(out.status.success(), "{lang}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            "{\"code\":\"underage\",\"field\":\"age\",\"message\":\"age 12 is too low\",\"outcome\":\"reject\"}\n{\"outcome\":\"keep\",\"record\":{\"age\":40,\"checked\":true}}\n",
            "{lang}"
        );
    }
}

#[test]
fn plugin_test_watch_reruns_on_every_change() {
    use std::io::BufRead;
    let dir = Dir::new();
    let out = sluice()
        .current_dir(dir.tmp.path())
        .args(["plugin", "new", "loop", "--lang", "c"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut child = sluice()
        .args(["plugin", "test", "--watch"])
        .arg(dir.path("loop"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let expect = |what: &str| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if l.starts_with(what) => return,
                Ok(_) => {}
                Err(_) => panic!("no `{what}` line"),
            }
        }
    };
    expect("PASS");
    let source = dir.path("loop/plugin.c");
    let code = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, code.replace("toupper", "tolower")).unwrap();
    expect("FAIL: 1 of 1 cases");
    std::fs::write(&source, &code).unwrap();
    expect("PASS");
    child.kill().unwrap();
    child.wait().unwrap();
    // Outcomes are accepted with one `--update` run, not in a loop.
    let out = sluice()
        .args(["plugin", "test", "--watch", "--update"])
        .arg(dir.path("loop"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`--watch` and `--update` do not go together"),
        "{}",
        stderr(&out)
    );
}
