//! Hot reload while a live stream runs: changes go live between batches,
//! broken candidates and unsupported changes never do, nothing is lost,
//! repeated or reordered.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn pipeline_text(tag: &str, source: &str, watch: bool) -> String {
    format!(
        "[source]\ntype = \"jsonl\"\npath = \"{source}\"\nfollow = true\n\n[[transforms]]\nname = \"tagger\"\nplugin = \"plugins/tagger.wasm\"\nconfig = {{ mode = \"pass\", tag = \"{tag}\" }}\n\n[sink]\ntype = \"jsonl\"\npath = \"out/o.jsonl\"\n\n[runtime]\nbatch_size = 16\nwatch = {watch}\n"
    )
}

/// Writes a file the way editors do: a temporary file, then a rename.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Live {
    dir: Dir,
    child: Child,
    next: usize,
}

impl Live {
    fn start(watch: bool) -> Self {
        Self::start_with(watch, &[])
    }

    fn start_with(watch: bool, extra: &[&str]) -> Self {
        let dir = Dir::new();
        std::fs::create_dir_all(dir.path("plugins")).unwrap();
        std::fs::copy(plugin("fixture-misbehave"), dir.path("plugins/tagger.wasm")).unwrap();
        dir.write("in/stream.jsonl", "");
        dir.write(
            "pipeline.toml",
            pipeline_text("v1", "in/stream.jsonl", watch),
        );
        let child = sluice()
            .env("SLUICE_LOG", "info")
            .arg("run")
            .arg(dir.path("pipeline.toml"))
            .arg("--no-progress")
            .arg("--summary-json")
            .arg(dir.path("summary.json"))
            .args(extra)
            .stderr(Stdio::from(
                std::fs::File::create(dir.path("stderr.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        Live {
            dir,
            child,
            next: 0,
        }
    }

    /// Appends `n` records to the stream and waits until all records so far are out.
    fn feed(&mut self, n: usize) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path("in/stream.jsonl"))
            .unwrap();
        for _ in 0..n {
            writeln!(f, "{{\"i\":{}}}", self.next).unwrap();
            self.next += 1;
        }
        f.flush().unwrap();
        self.wait_for(|out| out.len() == self.next, "all records out");
    }

    fn output(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path("out/o.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_for(&self, cond: impl Fn(&[serde_json::Value]) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond(&self.output()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Feeds records until one comes out tagged `tag`.
    fn feed_until_tag(&mut self, tag: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.output().iter().any(|v| v["tag"] == tag) {
            assert!(
                Instant::now() < deadline,
                "tag {tag} never went live; log:\n{}",
                self.log()
            );
            self.feed(16);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("stderr.log")).unwrap_or_default()
    }

    /// Stops with SIGTERM; returns the summary.
    fn stop(mut self) -> (Dir, serde_json::Value, Vec<serde_json::Value>) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "sluice failed; log:\n{}", self.log());
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.path("summary.json")).unwrap())
                .unwrap();
        let out = self.output();
        (self.dir, summary, out)
    }
}

/// Every record exactly once, in order; tags change only forward.
fn assert_exactly_once_in_order(out: &[serde_json::Value], n: usize, tags: &[&str]) {
    assert_eq!(out.len(), n);
    let mut stage = 0;
    for (i, v) in out.iter().enumerate() {
        assert_eq!(v["i"], i, "record {i} missing, repeated or out of order");
        let tag = v["tag"].as_str().unwrap();
        while tags[stage] != tag {
            stage += 1;
            assert!(
                stage < tags.len(),
                "record {i} tagged {tag} after a later version was live"
            );
        }
    }
    assert_eq!(stage, tags.len() - 1, "not every version went live");
}

#[test]
fn changes_go_live_between_batches_and_broken_or_unsupported_ones_never_do() {
    let mut live = Live::start(true);
    live.feed(100);
    // A config change of the transform: applied live.
    replace(
        &live.dir.path("pipeline.toml"),
        &pipeline_text("v2", "in/stream.jsonl", true),
    );
    live.feed_until_tag("v2");
    // A broken candidate (a plugin file truncated mid-write): refused.
    let good = std::fs::read(live.dir.path("plugins/tagger.wasm")).unwrap();
    std::fs::write(
        live.dir.path("plugins/tagger.wasm"),
        &good[..good.len() / 3],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    live.feed(100);
    // A component of another world, and a config its init refuses.
    std::fs::copy(
        plugin("fixture-other-world"),
        live.dir.path("plugins/tagger.wasm"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    live.feed(20);
    std::fs::write(live.dir.path("plugins/tagger.wasm"), &good).unwrap();
    replace(
        &live.dir.path("pipeline.toml"),
        &pipeline_text("v2", "in/stream.jsonl", true)
            .replace("mode = \"pass\"", "mode = \"init_fail\""),
    );
    std::thread::sleep(Duration::from_millis(600));
    live.feed(20);
    replace(
        &live.dir.path("pipeline.toml"),
        &pipeline_text("v2", "in/stream.jsonl", true),
    );
    std::thread::sleep(Duration::from_millis(600));
    live.feed(20);
    // A source change cannot be applied live: refused as a whole (the tag
    // change beside it is not applied either).
    replace(
        &live.dir.path("pipeline.toml"),
        &pipeline_text("v3", "in/other.jsonl", true),
    );
    std::thread::sleep(Duration::from_millis(600));
    live.feed(100);
    let log = live.log();
    let (_dir, summary, out) = live.stop();
    let n = out.len();
    assert_exactly_once_in_order(&out, n, &["v1", "v2"]);
    assert!(
        log.contains("candidate refused; the running version stays live"),
        "{log}"
    );
    assert!(log.contains("is not a valid component"), "{log}");
    assert!(
        log.contains("does not export `sluice:plugin/transform@0.1.x`"),
        "{log}"
    );
    assert!(
        log.contains("refused to start: invalid config: `mode`: init_fail asked for"),
        "{log}"
    );
    assert!(log.contains("pipeline file changed [source] which cannot be applied while running; nothing was applied"), "{log}");
    assert!(log.contains("new version live"), "{log}");
    assert_eq!(summary["reloads"], 1, "{summary}");
    assert!(
        summary["reload_failures"].as_u64().unwrap() >= 2,
        "{summary}"
    );
    let versions = summary["plugins"][0]["records_by_version"]
        .as_array()
        .unwrap();
    assert_eq!(versions.len(), 2, "{summary}");
    let counted: u64 = versions.iter().map(|v| v[1].as_u64().unwrap()).sum();
    assert_eq!(counted, n as u64);
}

#[test]
fn with_watching_off_sighup_reloads() {
    let mut live = Live::start(false);
    live.feed(50);
    replace(
        &live.dir.path("pipeline.toml"),
        &pipeline_text("v2", "in/stream.jsonl", false),
    );
    std::thread::sleep(Duration::from_millis(600));
    live.feed(50);
    assert!(
        live.output().iter().all(|v| v["tag"] == "v1"),
        "reloaded without SIGHUP"
    );
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(live.child.id() as i32, libc::SIGHUP) };
    live.feed_until_tag("v2");
    let (_dir, summary, out) = live.stop();
    let n = out.len();
    assert_exactly_once_in_order(&out, n, &["v1", "v2"]);
    assert_eq!(summary["reloads"], 1);
}

#[test]
fn the_admin_api_shows_status_rolls_back_pauses_and_stops() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut live = Live::start_with(true, &["--admin", &addr]);
    let pf = live.dir.path("pipeline.toml");
    live.feed(50);
    let (ok, text) = ctl(&pf, &["status"]);
    assert!(ok, "{text}");
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["records_in"], 50, "{status}");
    let v1 = status["transforms"][0]["live"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v1.len(), 12);

    // Nothing to roll back to yet.
    let (ok, text) = ctl(&pf, &["rollback", "tagger"]);
    assert!(
        !ok && text.contains("has no earlier version loaded"),
        "{text}"
    );
    let (ok, text) = ctl(&pf, &["rollback", "nope"]);
    assert!(!ok && text.contains("no transform named `nope`"), "{text}");

    replace(
        &live.dir.path("pipeline.toml"),
        &pipeline_text("v2", "in/stream.jsonl", true),
    );
    live.feed_until_tag("v2");
    let (_, text) = ctl(&pf, &["status"]);
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        status["transforms"][0]["previous"][0],
        v1.as_str(),
        "{status}"
    );

    let (ok, text) = ctl(&pf, &["rollback", "tagger"]);
    assert!(ok, "{text}");
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["live"], v1.as_str());
    live.feed(16);
    let mut n = live.next;
    let deadline = Instant::now() + Duration::from_secs(30);
    while live.output().last().is_none_or(|v| v["tag"] != "v1") {
        assert!(Instant::now() < deadline, "rollback never went live");
        live.feed(16);
        n = live.next;
    }

    // Paused: at most the batch being handed over gets through.
    let (ok, text) = ctl(&pf, &["pause"]);
    assert!(ok, "{text}");
    std::thread::sleep(Duration::from_millis(200));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(live.dir.path("in/stream.jsonl"))
        .unwrap();
    for _ in 0..64 {
        writeln!(f, "{{\"i\":{}}}", live.next).unwrap();
        live.next += 1;
    }
    drop(f);
    std::thread::sleep(Duration::from_millis(800));
    let held = live.output().len();
    assert!(
        held < live.next && held <= n + 16,
        "paused, yet {held} of {} records out",
        live.next
    );
    let (ok, _) = ctl(&pf, &["resume"]);
    assert!(ok);
    live.wait_for(|out| out.len() == live.next, "all records after resume");

    let (ok, text) = ctl(&pf, &["metrics"]);
    assert!(ok, "{text}");
    assert!(text.contains("records_in_total"), "{text}");
    assert!(
        text.contains("plugin_records_total{transform=\"tagger\""),
        "{text}"
    );

    let (ok, text) = ctl(&pf, &["stop"]);
    assert!(ok, "{text}");
    let status = live.child.wait().unwrap();
    assert!(status.success(), "{}", live.log());
    let out = live.output();
    assert_exactly_once_in_order(&out, out.len(), &["v1", "v2", "v1"]);
    let (ok, text) = ctl(&pf, &["status"]);
    assert!(!ok && text.contains("cannot reach the admin API"), "{text}");
}

#[test]
fn the_admin_api_refuses_web_pages_other_hosts_and_requests_without_the_token() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut live = Live::start_with(true, &["--admin", &addr]);
    let pf = live.dir.path("pipeline.toml");
    live.feed(5);
    let file = live.dir.path(".sluice/pipeline.admin.json");
    let admin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is the owner's only");
    let token = admin["token"].as_str().unwrap().to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let stop = format!("http://{addr}/stop");
    // What a page in a browser on this machine can send: a simple form POST.
    let page = agent
        .post(&stop)
        .header("Origin", "http://evil.example")
        .header("Content-Type", "text/plain")
        .send("x")
        .unwrap();
    assert_eq!(page.status(), 403);
    // Even with the token (a page cannot read it, but a proxy could add it).
    let page = agent
        .post(&stop)
        .header("Origin", "http://evil.example")
        .header("Authorization", &format!("Bearer {token}"))
        .send_empty()
        .unwrap();
    assert_eq!(page.status(), 403);
    // A local process without the token.
    assert_eq!(agent.post(&stop).send_empty().unwrap().status(), 401);
    let wrong = agent
        .post(&stop)
        .header("Authorization", "Bearer 00")
        .send_empty()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // DNS rebinding: a name that resolves here, but is not the address.
    let rebound = agent
        .get(&format!("http://{addr}/status"))
        .header("Host", "evil.example")
        .call()
        .unwrap();
    assert_eq!(rebound.status(), 403);
    // Still running, and the token works.
    let (ok, text) = ctl(&pf, &["status"]);
    assert!(ok && text.contains("\"stopping\": false"), "{text}");
    // A second run of the same pipeline stops at once, naming the first.
    let second = sluice()
        .arg("run")
        .arg(&pf)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(
        err.contains("already running") && err.contains(&format!("process {}", live.child.id())),
        "{err}"
    );
    let (ok, text) = ctl(&pf, &["stop"]);
    assert!(ok, "{text}");
    assert!(live.child.wait().unwrap().success(), "{}", live.log());
    assert!(!file.exists(), "the token file goes with the run");
}

fn with_canary(text: &str) -> String {
    text.replace(
        "\n\n[sink]",
        "\ncanary = { input = \"canary/in.jsonl\", expect = \"canary/want.jsonl\" }\n\n[sink]",
    )
}

#[test]
fn a_candidate_that_fails_its_canary_never_goes_live() {
    let mut live = Live::start(true);
    live.feed(20);
    let dir = &live.dir;
    dir.write("canary/in.jsonl", "{\"i\": -1}\n");
    dir.write(
        "canary/want.jsonl",
        "{\"outcome\":\"keep\",\"record\":{\"i\":-1,\"tag\":\"v1\"}}\n",
    );
    // v2 with a canary that expects v1's behaviour: refused.
    replace(
        &dir.path("pipeline.toml"),
        &with_canary(&pipeline_text("v2", "in/stream.jsonl", true)),
    );
    std::thread::sleep(Duration::from_millis(700));
    live.feed(20);
    assert!(live.output().iter().all(|v| v["tag"] == "v1"));
    let log = live.log();
    assert!(
        log.contains("fails its canary: canary record 1 of") && log.contains("differs: expected"),
        "{log}"
    );
    // The canary updated with it: accepted.
    live.dir.write(
        "canary/want.jsonl",
        "{\"outcome\":\"keep\",\"record\":{\"i\":-1,\"tag\":\"v3\"}}\n",
    );
    replace(
        &live.dir.path("pipeline.toml"),
        &with_canary(&pipeline_text("v3", "in/stream.jsonl", true)),
    );
    live.feed_until_tag("v3");
    let (_dir, summary, out) = live.stop();
    assert_exactly_once_in_order(&out, out.len(), &["v1", "v3"]);
    assert_eq!(summary["reloads"], 1);
    assert!(summary["reload_failures"].as_u64().unwrap() >= 1);
}

#[test]
fn a_canary_that_fails_at_start_refuses_to_start() {
    let dir = Dir::new();
    std::fs::create_dir_all(dir.path("plugins")).unwrap();
    std::fs::copy(plugin("fixture-misbehave"), dir.path("plugins/tagger.wasm")).unwrap();
    dir.write("in/stream.jsonl", "{\"i\": 1}\n");
    dir.write("canary/in.jsonl", "{\"i\": -1}\n");
    dir.write("canary/want.jsonl", "{\"outcome\":\"drop\"}\n");
    let text = with_canary(&pipeline_text("v1", "in/stream.jsonl", true))
        .replace("follow = true", "follow = false");
    dir.write("pipeline.toml", text);
    let (out, _) = dir.run(&["--no-progress"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("plugin `tagger` (") && e.contains("fails its canary: canary record 1"),
        "{e}"
    );
    // `check` takes the same path: it names the failing canary too.
    let out = dir.check();
    assert!(!out.status.success());
    let o = stdout(&out);
    assert!(
        o.contains("FAIL  transform `tagger`") && o.contains("fails its canary: canary record 1"),
        "{o}"
    );
}

/// The component with a custom section appended: the same behaviour in
/// other bytes, hence another version.
fn variant(component: &[u8], n: usize) -> Vec<u8> {
    fn leb(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"sluice-test-variant";
    let payload = n.to_le_bytes();
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(&payload);
    let mut out = component.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

#[test]
fn a_million_records_through_fifty_plugin_replacements_exactly_once_in_order() {
    const RECORDS: usize = 1_000_000;
    const SWAPS: usize = 50;
    let mut live = Live::start(true);
    // Running (plugins loaded) before the first replacement.
    live.feed(10);
    let component = std::fs::read(live.dir.path("plugins/tagger.wasm")).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(live.dir.path("in/stream.jsonl"))
        .unwrap();
    let mut append = |live: &mut Live, upto: usize| {
        let mut chunk = String::with_capacity(upto.saturating_sub(live.next) * 12);
        while live.next < upto {
            chunk.push_str(&format!("{{\"i\":{}}}\n", live.next));
            live.next += 1;
        }
        f.write_all(chunk.as_bytes()).unwrap();
        f.flush().unwrap();
    };
    let swaps_so_far = |live: &Live| live.log().matches("new version live").count();
    let per_step = RECORDS / (SWAPS + 1);
    let mut tag = 1;
    for k in 0..SWAPS {
        append(&mut live, (k + 1) * per_step);
        let before = swaps_so_far(&live);
        // Replace the plugin file in place (`cp` over it), and every fifth
        // time change the transform's config too (the tag it writes).
        std::fs::write(live.dir.path("plugins/tagger.wasm"), variant(&component, k)).unwrap();
        if k % 5 == 4 {
            tag += 1;
            replace(
                &live.dir.path("pipeline.toml"),
                &pipeline_text(&format!("v{tag}"), "in/stream.jsonl", true),
            );
        }
        // Keep records flowing until the new version is live.
        let deadline = Instant::now() + Duration::from_secs(60);
        while swaps_so_far(&live) <= before {
            assert!(
                Instant::now() < deadline,
                "replacement {k} never went live:\n{}",
                live.log()
            );
            let more = live.next + 64;
            append(&mut live, more.min(RECORDS));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    append(&mut live, RECORDS);
    live.wait_for(|out| out.len() == RECORDS, "every record out");
    let (_dir, summary, out) = live.stop();
    let tags: Vec<String> = (1..=tag).map(|t| format!("v{t}")).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    assert_exactly_once_in_order(&out, RECORDS, &tags);
    let versions = summary["plugins"][0]["records_by_version"]
        .as_array()
        .unwrap();
    assert!(
        versions.len() > SWAPS,
        "only {} versions went live: {summary}",
        versions.len()
    );
    let counted: u64 = versions.iter().map(|v| v[1].as_u64().unwrap()).sum();
    assert_eq!(counted, RECORDS as u64);
    assert_eq!(summary["reload_failures"], 0, "{summary}");
}

fn with_shadow(text: &str, shadow: &str) -> String {
    text.replace("\n\n[sink]", &format!("\n{shadow}\n\n[sink]"))
}

#[test]
fn a_shadow_is_compared_then_promoted_on_command() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut live = Live::start_with(true, &["--admin", &addr]);
    let pf = live.dir.path("pipeline.toml");
    live.feed(20);
    let shadow = format!(
        "shadow = {{ plugin = \"{}\", config = {{ mode = \"pass\", tag = \"v2\" }} }}",
        live.dir.path("plugins/tagger.wasm").display()
    );
    replace(
        &live.dir.path("pipeline.toml"),
        &with_shadow(&pipeline_text("v1", "in/stream.jsonl", true), &shadow),
    );
    // The shadow sees the same batches; its output is compared, not written.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        live.feed(16);
        let (_, text) = ctl(&pf, &["status"]);
        let status: serde_json::Value = serde_json::from_str(&text).unwrap();
        let report = status["transforms"][0]["shadow"].clone();
        if report["compared"].as_u64().unwrap_or(0) >= 32 {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the shadow never compared records: {status}"
        );
    };
    assert_eq!(
        report["compared"], report["differing"],
        "every record differs in `tag`: {report}"
    );
    assert_eq!(
        report["by_outcome"]["keep -> keep"], report["differing"],
        "{report}"
    );
    assert_eq!(
        report["changed_fields"]["tag"], report["differing"],
        "{report}"
    );
    assert_eq!(report["samples"][0]["fields"][0], "tag", "{report}");
    assert!(
        live.output().iter().all(|v| v["tag"] == "v1"),
        "the shadow wrote output"
    );

    let (ok, text) = ctl(&pf, &["promote", "tagger"]);
    assert!(ok, "{text}");
    live.feed_until_tag("v2");
    let (ok, text) = ctl(&pf, &["promote", "tagger"]);
    assert!(!ok && text.contains("has no shadow"), "{text}");
    // A rollback after a promotion returns to the version before it.
    let (ok, text) = ctl(&pf, &["rollback", "tagger"]);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while live.output().last().is_none_or(|v| v["tag"] != "v1") {
        assert!(
            Instant::now() < deadline,
            "rollback after promotion never went live"
        );
        live.feed(16);
    }
    let (_dir, _summary, out) = live.stop();
    assert_exactly_once_in_order(&out, out.len(), &["v1", "v2", "v1"]);
}

#[test]
fn a_shadow_that_agrees_is_promoted_automatically() {
    let mut live = Live::start(true);
    live.feed(20);
    // Same behaviour, another config (an unused key): another version.
    let shadow = format!(
        "shadow = {{ plugin = \"{}\", config = {{ mode = \"pass\", tag = \"v1\", note = \"candidate\" }}, promote_after = 100 }}",
        live.dir.path("plugins/tagger.wasm").display()
    );
    replace(
        &live.dir.path("pipeline.toml"),
        &with_shadow(&pipeline_text("v1", "in/stream.jsonl", true), &shadow),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !live.log().contains("promoting the shadow") {
        assert!(
            Instant::now() < deadline,
            "never promoted; log:\n{}",
            live.log()
        );
        live.feed(16);
    }
    live.feed(16);
    let (_dir, summary, out) = live.stop();
    assert_exactly_once_in_order(&out, out.len(), &["v1"]);
    let versions = summary["plugins"][0]["records_by_version"]
        .as_array()
        .unwrap();
    assert_eq!(versions.len(), 2, "{summary}");
    assert_ne!(versions[0][0], versions[1][0]);
}

#[test]
fn a_candidate_that_traps_on_its_first_batch_never_goes_live_and_loses_nothing() {
    let mut live = Live::start(true);
    live.feed(20);
    let trapping =
        pipeline_text("v2", "in/stream.jsonl", true).replace("mode = \"pass\"", "mode = \"trap\"");
    replace(&live.dir.path("pipeline.toml"), &trapping);
    std::thread::sleep(Duration::from_millis(600));
    live.feed(100);
    assert!(live.output().iter().all(|v| v["tag"] == "v1"));
    assert!(
        live.log().contains("failed its first batch: trapped"),
        "{}",
        live.log()
    );
    // Deleted, then recreated: the deletion is refused, the new file goes live.
    let bytes = std::fs::read(live.dir.path("plugins/tagger.wasm")).unwrap();
    replace(
        &live.dir.path("pipeline.toml"),
        &pipeline_text("v1", "in/stream.jsonl", true),
    );
    std::fs::remove_file(live.dir.path("plugins/tagger.wasm")).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    live.feed(20);
    std::fs::write(live.dir.path("plugins/tagger.wasm"), variant(&bytes, 7)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !live.log().contains("new version live") {
        assert!(
            Instant::now() < deadline,
            "the recreated file never went live:\n{}",
            live.log()
        );
        live.feed(16);
    }
    live.feed(16);
    let log = live.log();
    let (_dir, summary, out) = live.stop();
    assert_exactly_once_in_order(&out, out.len(), &["v1"]);
    assert_eq!(summary["dead_lettered"], 0, "{summary}");
    assert_eq!(summary["reloads"], 1, "{summary}");
    assert!(log.contains("cannot read"), "{log}");
}
