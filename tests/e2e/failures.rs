//! Broken and hostile plugins: refused at start with a clear message, or
//! their batches retried once and then dead-lettered while the pipeline
//! goes on. Nothing is ever lost.

use crate::common::*;

/// A pipeline: JSONL input of `n` records (record 3 is poison), the given
/// transform, JSONL output.
fn pipeline(dir: &Dir, n: usize, plugin_path: &str, config: &str, runtime: &str) {
    let input: String = (1..=n)
        .map(|i| format!("{{\"i\":{i},\"poison\":{}}}\n", i == 3))
        .collect();
    dir.write("in/r.jsonl", input);
    dir.write(
        "pipeline.toml",
        format!(
            "[source]\ntype = \"jsonl\"\npath = \"in/r.jsonl\"\n\n[[transforms]]\nname = \"bad\"\nplugin = \"{plugin_path}\"\nconfig = {config}\n\n[sink]\ntype = \"jsonl\"\npath = \"out/r.jsonl\"\n\n[dead_letter]\ntype = \"jsonl\"\npath = \"out/dead.jsonl\"\n\n[runtime]\nbatch_size = 2\n{runtime}\n"
        ),
    );
}

/// Runs a misbehaving mode and returns the summary and the dead letters.
fn misbehave(
    mode: &str,
    n: usize,
    runtime: &str,
) -> (Dir, serde_json::Value, Vec<serde_json::Value>) {
    let dir = Dir::new();
    pipeline(
        &dir,
        n,
        &plugin("fixture-misbehave"),
        &format!("{{ mode = \"{mode}\" }}"),
        runtime,
    );
    let (out, s) = dir.run(&["--no-progress"]);
    let s = assert_balanced(&out, &s);
    let dead = dir.jsonl("out/dead.jsonl");
    (dir, s, dead)
}

fn codes(dead: &[serde_json::Value]) -> Vec<String> {
    dead.iter()
        .map(|d| {
            format!(
                "{} {}",
                d["position"].as_str().unwrap(),
                d["code"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn rejecting_plugin_dead_letters_every_record_with_its_code() {
    let (_d, s, dead) = misbehave("reject_all", 3, "");
    assert_eq!(
        (s["written"].as_u64(), s["dead_lettered"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(
        codes(&dead),
        [
            "line 1 fixture_reject",
            "line 2 fixture_reject",
            "line 3 fixture_reject"
        ]
    );
    assert_eq!(dead[0]["reason"], "rejected");
    assert_eq!(dead[0]["message"], "rejected by fixture");
}

#[test]
fn trapping_plugin_is_retried_then_its_batches_are_dead_lettered_and_the_pipeline_goes_on() {
    let (_d, s, dead) = misbehave("trap", 3, "");
    assert_eq!(s["dead_lettered"], 3);
    assert_eq!(s["plugins"][0]["retries"], 2);
    assert_eq!(s["plugins"][0]["failures"], 2);
    assert_eq!(dead[0]["reason"], "plugin_failed");
    assert_eq!(dead[0]["code"], "trap");
    let msg = dead[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("plugin `bad`")
            && msg.contains("fixture trap")
            && msg.contains("after one retry"),
        "{msg}"
    );
}

#[test]
fn a_poison_record_only_costs_its_own_batch() {
    let (dir, s, dead) = misbehave("trap_on_poison", 6, "");
    assert_eq!(
        (s["written"].as_u64(), s["dead_lettered"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(codes(&dead), ["line 3 trap", "line 4 trap"]);
    let written: Vec<i64> = dir
        .jsonl("out/r.jsonl")
        .iter()
        .map(|v| v["i"].as_i64().unwrap())
        .collect();
    assert_eq!(written, [1, 2, 5, 6]);
}

#[test]
fn a_plugin_that_fails_once_succeeds_on_the_fresh_instance() {
    let (_d, s, dead) = misbehave("trap_second_batch", 4, "");
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(s["written"], 4);
    assert_eq!(s["plugins"][0]["retries"], 1);
    assert_eq!(s["plugins"][0]["failures"], 0);
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    let (_d, s, dead) = misbehave("loop", 1, "batch_timeout_ms = 200");
    assert_eq!(s["dead_lettered"], 1);
    assert_eq!(dead[0]["code"], "deadline_exceeded");
    assert!(
        dead[0]["message"]
            .as_str()
            .unwrap()
            .contains("exceeded its deadline of 200 ms"),
        "{}",
        dead[0]["message"]
    );
}

#[test]
fn memory_growth_hits_the_cap() {
    let (_d, s, dead) = misbehave("oom", 1, "memory_limit_mib = 16");
    assert_eq!(s["dead_lettered"], 1);
    assert_eq!(dead[0]["code"], "memory_limit_exceeded");
    assert!(
        dead[0]["message"]
            .as_str()
            .unwrap()
            .contains("exceeded its memory limit of 16 MiB")
    );
}

/// The hostile plugins of the matrix that must be contained: each one's
/// batches are dead-lettered with `code`, the run goes on and balances.
#[test]
fn hostile_plugins_are_contained_and_their_batches_dead_lettered() {
    for (mode, code, says) in [
        ("stack_overflow", "trap", "call stack exhausted"),
        ("emit_explosion", "memory_limit_exceeded", "memory limit"),
        ("huge_output", "contract_violation", "unreadable outcomes"),
        ("trailing_bytes", "contract_violation", ""),
        ("too_many", "contract_violation", "3 outcomes for 2 records"),
    ] {
        let started = std::time::Instant::now();
        let (_d, s, dead) = misbehave(mode, 4, "memory_limit_mib = 32");
        assert_eq!(s["dead_lettered"], 4, "{mode}: {s}");
        assert_eq!(s["written"], 0, "{mode}: {s}");
        for d in &dead {
            assert_eq!(d["code"], code, "{mode}: {d}");
            let message = d["message"].as_str().unwrap();
            assert!(message.contains(says), "{mode}: {message}");
            assert!(message.len() < 5000, "{mode}: {} bytes", message.len());
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{mode} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn too_few_outcomes_break_the_contract() {
    let (_d, s, dead) = misbehave("short", 2, "");
    assert_eq!(s["dead_lettered"], 2);
    assert_eq!(dead[0]["code"], "contract_violation");
    assert!(
        dead[0]["message"]
            .as_str()
            .unwrap()
            .contains("returned 1 outcomes for 2 records"),
        "{}",
        dead[0]["message"]
    );
}

#[test]
fn garbage_outcomes_and_batch_errors_are_dead_lettered() {
    let (_d, _s, dead) = misbehave("garbage", 1, "");
    assert_eq!(dead[0]["code"], "contract_violation");
    assert!(
        dead[0]["message"]
            .as_str()
            .unwrap()
            .contains("unreadable outcomes")
    );
    let (_d, _s, dead) = misbehave("batch_error", 1, "");
    assert_eq!(dead[0]["code"], "batch_error");
    assert!(
        dead[0]["message"]
            .as_str()
            .unwrap()
            .contains("fixture batch error")
    );
}

#[test]
fn a_log_flood_is_capped_and_the_records_pass() {
    let (_d, s, dead) = misbehave("log_flood", 2, "");
    assert!(dead.is_empty());
    assert_eq!(s["written"], 2);
}

#[test]
fn swapped_or_planted_precompiled_plugins_are_not_loaded() {
    let dir = Dir::new();
    dir.write("in/r.jsonl", "{\"a\":1}\n{\"a\":null}\n");
    dir.write(
        "pipeline.toml",
        format!(
            "[source]\ntype = \"jsonl\"\npath = \"in/r.jsonl\"\n\n[[transforms]]\nname = \"map\"\nplugin = \"{}\"\nconfig = {{ rename = {{ a = \"b\" }} }}\n\n[[transforms]]\nname = \"check\"\nplugin = \"{}\"\n[transforms.config.fields]\nb = {{ required = true }}\n\n[sink]\ntype = \"jsonl\"\npath = \"out/r.jsonl\"\n\n[runtime]\ncache_dir = \"cache\"\n",
            plugin("mapper"),
            plugin("validate")
        ),
    );
    let (out, s) = dir.run(&["--no-progress"]);
    let s = assert_balanced(&out, &s);
    assert_eq!(
        (s["written"].as_u64(), s["dead_lettered"].as_u64()),
        (Some(1), Some(1))
    );
    let expected = std::fs::read_to_string(dir.path("out/r.jsonl")).unwrap();
    // Swap the two precompiled artefacts, MAC files and all.
    let mut arts: Vec<_> = std::fs::read_dir(dir.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    arts.sort();
    assert_eq!(arts.len(), 2, "{arts:?}");
    let mac = |p: &std::path::Path| p.with_extension("cwasm.mac");
    for (a, b) in [
        (arts[0].clone(), arts[1].clone()),
        (mac(&arts[0]), mac(&arts[1])),
    ] {
        let tmp = a.with_extension("tmp");
        std::fs::rename(&a, &tmp).unwrap();
        std::fs::rename(&b, &a).unwrap();
        std::fs::rename(&tmp, &b).unwrap();
    }
    std::fs::remove_file(dir.path("out/r.jsonl")).unwrap();
    let (out, s) = dir.run(&["--no-progress", "--reset"]);
    assert_balanced(&out, &s);
    assert!(
        stderr(&out).contains("cannot vouch for"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path("out/r.jsonl")).unwrap(),
        expected
    );
    // A planted artefact without a MAC is not loaded either.
    let arts2: Vec<_> = arts.iter().filter(|p| p.exists()).collect();
    std::fs::remove_file(mac(arts2[0])).unwrap();
    std::fs::remove_file(dir.path("out/r.jsonl")).unwrap();
    let (out, s) = dir.run(&["--no-progress", "--reset"]);
    assert_balanced(&out, &s);
    assert!(stderr(&out).contains("no MAC"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path("out/r.jsonl")).unwrap(),
        expected
    );
}

#[test]
fn a_plugin_sleeping_in_a_host_call_still_hits_the_deadline() {
    let started = std::time::Instant::now();
    let (_d, s, dead) = misbehave("sleep", 4, "batch_timeout_ms = 500");
    let took = started.elapsed();
    // Two batches, each tried twice: about 2 s, not 4 x 20 s.
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert_eq!(s["dead_lettered"], 4);
    assert!(
        codes(&dead)
            .iter()
            .all(|c| c.ends_with("deadline_exceeded")),
        "{:?}",
        codes(&dead)
    );
}

#[test]
fn a_stop_interrupts_a_plugin_at_once_and_the_rerun_reads_its_batch_again() {
    let dir = Dir::new();
    pipeline(
        &dir,
        6,
        &plugin("fixture-misbehave"),
        "{ mode = \"loop\" }",
        "batch_timeout_ms = 60000",
    );
    let child = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .arg("--no-progress")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stopped = std::time::Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let took = stopped.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    // The plugin loops with a 60 s deadline: the stop did not wait for it.
    assert!(
        took < std::time::Duration::from_secs(5),
        "the stop took {took:?}"
    );
    // Nothing was written or dead-lettered: the interrupted batch is read
    // again by the next run (here with a plugin that passes).
    assert!(dir.jsonl("out/dead.jsonl").is_empty());
    assert!(dir.jsonl("out/r.jsonl").is_empty());
    pipeline(
        &dir,
        6,
        &plugin("fixture-misbehave"),
        "{ mode = \"pass\" }",
        "",
    );
    let (out, s) = dir.run(&["--no-progress"]);
    let s = assert_balanced(&out, &s);
    assert_eq!(s["written"], 6, "{s}");
}

#[test]
fn huge_plugin_strings_are_cut_and_their_control_characters_escaped() {
    let (d, s, dead) = misbehave("huge_strings", 4, "");
    assert_eq!(s["dead_lettered"], 4);
    for letter in &dead {
        for (key, max) in [("message", 4096), ("code", 128), ("field", 256)] {
            let text = letter[key].as_str().unwrap();
            assert!(text.len() < max + 64, "{key}: {} bytes", text.len());
            assert!(text.contains("more bytes cut"), "{key}: {text}");
            assert!(
                !text.contains('\u{1b}') && text.contains("\\u{1b}"),
                "{key}"
            );
        }
    }
    // The log got cut lines too: no escape sequence reached it.
    let (out, _) = d.run(&["--no-progress", "--reset"]);
    let log = stderr(&out);
    assert!(
        !log.contains('\u{1b}'),
        "an escape sequence reached the log"
    );
    assert!(log.len() < 200_000, "{} bytes of log", log.len());
}

/// Runs a pipeline whose plugin must be refused at start; returns stderr.
fn refused(plugin_path: &str, config: &str) -> String {
    let dir = Dir::new();
    pipeline(&dir, 1, plugin_path, config, "");
    let (out, s) = dir.run(&["--no-progress"]);
    assert!(!out.status.success(), "the pipeline started");
    assert!(s.is_none());
    assert!(!dir.path("out/r.jsonl").exists(), "nothing may be written");
    stderr(&out)
}

#[test]
fn refuses_a_core_module_a_truncated_file_and_a_text_file() {
    let dir = Dir::new();
    let core = dir.write("core.wasm", b"\0asm\x01\0\0\0");
    let e = refused(&core.display().to_string(), "{}");
    assert!(
        e.contains("plugin `bad`: `")
            && e.contains("core.wasm` is a core WebAssembly module, not a component"),
        "{e}"
    );
    let full = std::fs::read(plugin("mapper")).unwrap();
    let cut = dir.write("cut.wasm", &full[..full.len() / 2]);
    let e = refused(&cut.display().to_string(), "{}");
    assert!(e.contains("cut.wasm` is not a valid component"), "{e}");
    let text = dir.write("notes.wasm", "hello");
    let e = refused(&text.display().to_string(), "{}");
    assert!(e.contains("notes.wasm` is not a WebAssembly file"), "{e}");
    let e = refused(&dir.path("missing.wasm").display().to_string(), "{}");
    assert!(
        e.contains("plugin `bad`: cannot read `") && e.contains("missing.wasm"),
        "{e}"
    );
}

#[test]
fn refuses_a_component_of_another_world() {
    let e = refused(&plugin("fixture-other-world"), "{}");
    assert!(
        e.contains("does not export `sluice:plugin/transform@0.1.x` (it exports `answer`)"),
        "{e}"
    );
}

#[test]
fn refuses_a_plugin_whose_init_fails_naming_plugin_file_and_reason() {
    let e = refused(&plugin("fixture-misbehave"), "{ mode = \"init_fail\" }");
    assert!(e.contains("plugin `bad` (") && e.contains("fixture-misbehave.wasm` refused to start: invalid config: `mode`: init_fail asked for"), "{e}");
    let e = refused(&plugin("mapper"), "{ renam = { a = \"b\" } }");
    assert!(
        e.contains("refused to start: invalid config: unknown field `renam`"),
        "{e}"
    );
}

/// Runs the `probe` fixture with `grants` and returns what it saw.
fn probe(grants: &str) -> serde_json::Value {
    let dir = Dir::new();
    let secret = dir.write("secret/data.txt", "top secret");
    dir.write("in/r.jsonl", "{\"i\": 1}\n");
    dir.write(
        "pipeline.toml",
        format!(
            "[source]\ntype = \"jsonl\"\npath = \"in/r.jsonl\"\n\n[[transforms]]\nname = \"probe\"\nplugin = \"{}\"\nconfig = {{ mode = \"probe\", file = \"{}\" }}\n{grants}\n\n[sink]\ntype = \"jsonl\"\npath = \"out/r.jsonl\"\n",
            plugin("fixture-misbehave"),
            secret.display()
        ),
    );
    let out = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .env("SLUICE_PROBE", "host value")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    dir.jsonl("out/r.jsonl").remove(0)
}

#[test]
fn the_sandbox_denies_environment_clock_and_files_by_default() {
    let seen = probe("");
    assert_eq!(seen["env"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["now"], 0, "the clock reads the epoch: {seen}");
    assert!(
        seen["file"].as_str().unwrap().starts_with("error: "),
        "{seen}"
    );
}

#[test]
fn granted_capabilities_are_exactly_what_the_plugin_gets() {
    let dir_grant =
        "[transforms.grants]\nenv = [\"SLUICE_PROBE\"]\nclock = true\nread_dirs = [\"secret\"]";
    let seen = probe(dir_grant);
    assert_eq!(seen["env"], "host value", "{seen}");
    assert!(seen["now"].as_i64().unwrap() > 1_700_000_000, "{seen}");
    assert_eq!(seen["file"], "top secret", "{seen}");
}

#[test]
fn emitted_records_are_counted_and_balance() {
    let (dir, s, dead) = misbehave("split", 3, "");
    assert!(dead.is_empty());
    assert_eq!(
        (
            s["records_in"].as_u64(),
            s["written"].as_u64(),
            s["dropped"].as_u64(),
            s["expanded"].as_u64()
        ),
        (Some(3), Some(4), Some(1), Some(2)),
        "{s}"
    );
    let parts: Vec<(i64, i64)> = dir
        .jsonl("out/r.jsonl")
        .iter()
        .map(|v| (v["i"].as_i64().unwrap(), v["part"].as_i64().unwrap()))
        .collect();
    assert_eq!(parts, [(1, 1), (1, 2), (3, 1), (3, 2)]);
}
