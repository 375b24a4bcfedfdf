//! The console and the run report in a real browser: Debian's Chromium,
//! headless, driven over the DevTools protocol (`scripts/chromium.sh
//! install` puts it at /usr/bin/chromium; `SLUICE_CHROMIUM` names another).
//! A test fails when the browser is missing.
//!
//! `SLUICE_SCREENSHOTS=DIR` saves what the browser showed as PNG files
//! (that is how the pictures in docs/ are made).

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value as Json;

use crate::common::*;

/// A headless Chromium and the errors its pages reported.
struct Chromium {
    browser: Browser,
    errors: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn launch() -> Self {
        let path = std::env::var_os("SLUICE_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        assert!(
            path.exists(),
            "no Chromium at {}: run `scripts/chromium.sh install` (the README's test command does)",
            path.display()
        );
        let profile = tempfile::tempdir().unwrap();
        // As root Chromium needs --no-sandbox; the network is closed here,
        // so no background connections either.
        let args: Vec<&OsStr> = [
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        .iter()
        .map(OsStr::new)
        .collect();
        let options = LaunchOptions::default_builder()
            .path(Some(path))
            .headless(true)
            .sandbox(false)
            .window_size(Some((1400, 1000)))
            .user_data_dir(Some(profile.path().to_path_buf()))
            .idle_browser_timeout(Duration::from_secs(120))
            .args(args)
            .build()
            .unwrap();
        Chromium {
            browser: Browser::new(options).unwrap(),
            errors: Arc::default(),
            _profile: profile,
        }
    }

    /// A new tab that records console errors, uncaught exceptions and
    /// failed loads (CSP violations included) into `errors`.
    fn tab(&self) -> Arc<Tab> {
        let tab = self.browser.new_tab().unwrap();
        tab.set_default_timeout(Duration::from_secs(20));
        tab.enable_log().unwrap();
        tab.enable_runtime().unwrap();
        let errors = self.errors.clone();
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let text = match event {
                Event::LogEntryAdded(e) => {
                    let entry = &e.params.entry;
                    format!("{:?}", entry.level)
                        .eq_ignore_ascii_case("error")
                        .then(|| format!("log: {} ({:?})", entry.text, entry.url))
                }
                Event::RuntimeExceptionThrown(e) => {
                    Some(format!("exception: {}", e.params.exception_details.text))
                }
                Event::RuntimeConsoleAPICalled(e) => {
                    let kind = format!("{:?}", e.params.Type);
                    (kind.eq_ignore_ascii_case("error") || kind.eq_ignore_ascii_case("warning"))
                        .then(|| format!("console.{kind}: {:?}", e.params.args))
                }
                _ => None,
            };
            if let Some(t) = text {
                errors.lock().unwrap().push(t);
            }
        }))
        .unwrap();
        tab
    }

    fn assert_no_errors(&self) {
        let errors = self.errors.lock().unwrap();
        assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
    }

    /// The errors so far, forgotten.
    fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.lock().unwrap())
    }
}

/// Evaluates `expr` in the page (a promise is awaited); its value as JSON.
fn eval(tab: &Tab, expr: &str) -> Json {
    let r = tab
        .evaluate(
            &format!("Promise.resolve(({expr})).then(v => JSON.stringify(v))"),
            true,
        )
        .unwrap();
    match r.value {
        Some(Json::String(s)) => serde_json::from_str(&s).unwrap(),
        other => panic!("`{expr}` gave {other:?}"),
    }
}

/// The text of the first element matching `selector` (`null` if none).
fn text(tab: &Tab, selector: &str) -> Json {
    eval(
        tab,
        &format!(
            "(document.querySelector({}) || {{}}).textContent ?? null",
            Json::String(selector.into())
        ),
    )
}

/// A counter shown on the page (`9,559` → 9559).
fn number(tab: &Tab, selector: &str) -> u64 {
    let t = text(tab, selector);
    t.as_str()
        .unwrap_or_default()
        .replace(',', "")
        .parse()
        .unwrap_or(0)
}

/// Waits until `expr` is true in the page.
fn wait_until(tab: &Tab, expr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while eval(tab, &format!("!!({expr})")) != Json::Bool(true) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; page text:\n{}",
            eval(tab, "document.body.innerText")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn screenshot(tab: &Tab, name: &str) {
    let Some(dir) = std::env::var_os("SLUICE_SCREENSHOTS") else {
        return;
    };
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
}

/// Clicks the element, as a person would (the mouse at its centre).
fn click(tab: &Tab, selector: &str) {
    tab.wait_for_element(selector).unwrap().click().unwrap();
}

/// Clicks a button that asks for a confirmation, and confirms.
fn click_and_confirm(tab: &Tab, selector: &str) {
    click(tab, selector);
    wait_until(
        tab,
        "document.getElementById('confirm').open",
        "the confirmation",
    );
    click(tab, "#confirm-ok");
}

/// A live run: records appended to a followed JSON-lines file go through
/// `tagger` (it adds `tag`) and `validate` (it refuses bad emails) to a
/// JSON-lines file, with the admin API on.
struct LiveRun {
    dir: Dir,
    child: Child,
    addr: String,
    feeding: Arc<AtomicBool>,
    feeder: Option<std::thread::JoinHandle<()>>,
}

fn live_pipeline(tag: &str, shadow: Option<&str>) -> String {
    let shadow = shadow
        .map(|t| {
            format!("shadow = {{ plugin = \"plugins/tagger.wasm\", config = {{ mode = \"pass\", tag = \"{t}\" }} }}\n")
        })
        .unwrap_or_default();
    format!(
        r#"name = "console-demo"
[source]
type = "jsonl"
path = "in/stream.jsonl"
follow = true

[[transforms]]
name = "tagger"
plugin = "plugins/tagger.wasm"
config = {{ mode = "pass", tag = "{tag}" }}
{shadow}
[[transforms]]
name = "validate"
plugin = "{validate}"
config = {{ fields = {{ email = {{ required = true, email = true }} }} }}

[sink]
type = "jsonl"
path = "out/o.jsonl"

[dead_letter]
type = "jsonl"
path = "out/dead.jsonl"

[runtime]
batch_size = 32
"#,
        validate = plugin("validate"),
    )
}

/// Writes a file the way editors do: a temporary file, then a rename.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl LiveRun {
    fn start() -> Self {
        let dir = Dir::new();
        std::fs::create_dir_all(dir.path("plugins")).unwrap();
        std::fs::copy(plugin("fixture-misbehave"), dir.path("plugins/tagger.wasm")).unwrap();
        dir.write("in/stream.jsonl", "");
        dir.write("pipeline.toml", live_pipeline("v1", None));
        let addr = format!("127.0.0.1:{}", free_port());
        let child = sluice()
            .env("SLUICE_LOG", "info")
            .arg("run")
            .arg(dir.path("pipeline.toml"))
            .args(["--no-progress", "--admin", &addr])
            .stderr(Stdio::from(
                std::fs::File::create(dir.path("stderr.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        // Records keep coming while the test runs: 20 every 100 ms, one in
        // seven with an address `validate` refuses, one in eleven without
        // an address.
        let feeding = Arc::new(AtomicBool::new(true));
        let path = dir.path("in/stream.jsonl");
        let go = feeding.clone();
        let feeder = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            let mut i = 0u64;
            while go.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    if i % 11 == 5 {
                        writeln!(f, "{{\"i\":{i}}}").unwrap();
                    } else if i % 7 == 3 {
                        writeln!(f, "{{\"i\":{i},\"email\":\"customer{i}.example.com\"}}").unwrap();
                    } else {
                        writeln!(f, "{{\"i\":{i},\"email\":\"customer{i}@example.com\"}}").unwrap();
                    }
                    i += 1;
                }
                f.flush().unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let run = LiveRun {
            dir,
            child,
            addr,
            feeding,
            feeder: Some(feeder),
        };
        run.wait_for_status(
            |s| s["records_in"].as_u64().unwrap_or(0) > 0,
            "first records",
        );
        run
    }

    fn pipeline(&self) -> PathBuf {
        self.dir.path("pipeline.toml")
    }

    fn status(&self) -> Json {
        let (ok, text) = ctl(&self.pipeline(), &["status"]);
        assert!(ok, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    fn wait_for_status(&self, cond: impl Fn(&Json) -> bool, what: &str) -> Json {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(f) = std::fs::metadata(self.dir.path(".sluice/console-demo.admin.json"))
                && f.len() > 0
            {
                let s = self.status();
                if cond(&s) {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                std::fs::read_to_string(self.dir.path("stderr.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The console's URL with the token, as `sluice ctl open` prints it.
    fn console_url(&self) -> String {
        let (ok, text) = ctl(&self.pipeline(), &["open"]);
        assert!(ok, "{text}");
        let url = text.trim().to_string();
        assert!(
            url.starts_with(&format!("http://{}/#token=", self.addr)),
            "{url}"
        );
        url
    }

    /// This run's token, from the URL `sluice ctl open` prints.
    fn token(&self) -> String {
        let url = self.console_url();
        url.split("#token=").nth(1).unwrap().to_string()
    }

    fn tagger(&self) -> Json {
        self.status()["transforms"][0].clone()
    }

    fn stop(mut self) -> Dir {
        self.feeding.store(false, Ordering::Relaxed);
        if let Some(f) = self.feeder.take() {
            f.join().unwrap();
        }
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "sluice failed; log:\n{}",
            std::fs::read_to_string(self.dir.path("stderr.log")).unwrap_or_default()
        );
        let dir = std::mem::replace(&mut self.dir, Dir::new());
        std::mem::forget(self);
        dir
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        self.feeding.store(false, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_console_shows_a_live_run_rolls_back_on_a_click_and_shows_a_shadow_side_by_side() {
    let run = LiveRun::start();
    // The run prints the console's address (without the token).
    let log = std::fs::read_to_string(run.dir.path("stderr.log")).unwrap();
    assert!(
        log.contains(&format!(
            "console: http://{}/  (`sluice ctl open --pipeline",
            run.addr
        )),
        "{log}"
    );
    let token = run.token();
    assert!(!log.contains(&token), "the token is in the run's output");
    let chrome = Chromium::launch();
    let tab = chrome.tab();
    tab.navigate_to(&run.console_url()).unwrap();
    tab.wait_until_navigated().unwrap();

    // The token left the address bar at once.
    wait_until(
        &tab,
        "document.getElementById('main').hidden === false",
        "the live page",
    );
    assert_eq!(eval(&tab, "location.hash"), Json::String(String::new()));
    assert_eq!(text(&tab, "#pipeline"), "console-demo");
    wait_until(
        &tab,
        "document.getElementById('run-state').textContent === 'running'",
        "running",
    );

    // The graph: source, both transforms, sink and the dead-letter sink.
    let nodes = eval(
        &tab,
        "[...document.querySelectorAll('#graph .node')].map(n => n.dataset.stage)",
    );
    assert_eq!(
        nodes,
        serde_json::json!(["source", "tagger", "validate", "sink", "dead letters"])
    );

    // Numbers move while the pipeline runs, and they balance.
    wait_until(
        &tab,
        "Number(document.getElementById('n-in').textContent.replace(/,/g, '')) > 0",
        "records in",
    );
    let first = number(&tab, "#n-in");
    wait_until(
        &tab,
        &format!("Number(document.getElementById('n-in').textContent.replace(/,/g, '')) > {first}"),
        "the count of records in to move",
    );
    wait_until(
        &tab,
        "document.querySelector('#chart-rate polyline') !== null",
        "the throughput chart",
    );
    wait_until(
        &tab,
        "[...document.querySelectorAll('#stage-times tbody tr')].length === 4",
        "time per stage",
    );
    let shown = number(&tab, "#n-in");
    let api = run.status()["records_in"].as_u64().unwrap();
    assert!(
        api >= shown,
        "the page shows {shown} records in, the API {api}"
    );
    screenshot(&tab, "overview");

    // Dead letters: the latest with reason, code, field, version, position.
    click(&tab, "button[data-tab=dead]");
    wait_until(
        &tab,
        "document.querySelectorAll('#dead-letters tbody tr[data-code=invalid_email]').length > 0",
        "dead letters",
    );
    let row = eval(
        &tab,
        "[...document.querySelector('#dead-letters tbody tr[data-code=invalid_email]').cells].map(c => c.textContent)",
    );
    assert_eq!(row[1], "validate", "{row}");
    assert_eq!(row[3], "invalid_email", "{row}");
    assert_eq!(row[4], "email", "{row}");
    assert!(
        row[5].as_str().unwrap().contains("is not an email address"),
        "{row}"
    );
    assert!(row[7].as_str().unwrap().starts_with("line "), "{row}");
    assert_eq!(row[6].as_str().unwrap().len(), 12, "{row}");
    // The reasons, as the API counts them.
    wait_until(
        &tab,
        "document.querySelectorAll('#reasons tbody tr').length === 2",
        "both reasons",
    );
    let reasons = eval(
        &tab,
        "[...document.querySelectorAll('#reasons tbody tr td:first-child')].map(c => c.textContent).sort()",
    );
    assert_eq!(
        reasons,
        serde_json::json!(["validate: invalid_email", "validate: required"])
    );
    // Filtered by code: only those.
    wait_until(
        &tab,
        "[...document.getElementById('filter-code').options].some(o => o.value === 'required')",
        "the code filter",
    );
    eval(
        &tab,
        "(() => { const f = document.getElementById('filter-code'); f.value = 'required'; f.dispatchEvent(new Event('change')); return true; })()",
    );
    let codes = eval(
        &tab,
        "[...new Set([...document.querySelectorAll('#dead-letters tbody tr')].map(r => r.dataset.code))]",
    );
    assert_eq!(codes, serde_json::json!(["required"]));
    assert!(
        text(&tab, "#dead-letters tbody tr .message")
            .as_str()
            .unwrap()
            .contains("email"),
    );
    screenshot(&tab, "dead-letters");

    // A new version goes live by hot reload; the page shows its history.
    let v1 = run.tagger()["live"].as_str().unwrap().to_string();
    replace(&run.pipeline(), &live_pipeline("v2", None));
    let s = run.wait_for_status(
        |s| {
            let t = &s["transforms"][0];
            t["live"] != v1.as_str() && t["previous"][0] == v1.as_str()
        },
        "v2 live",
    );
    let v2 = s["transforms"][0]["live"].as_str().unwrap().to_string();
    click(&tab, "button[data-tab=transforms]");
    wait_until(
        &tab,
        &format!(
            "(document.querySelector('article[data-transform=tagger] .live-version') || {{}}).textContent === '{v2}'"
        ),
        "v2 on the page",
    );
    let history = eval(
        &tab,
        "[...document.querySelectorAll('article[data-transform=tagger] .history tbody tr')].map(r => [...r.cells].map(c => c.textContent))",
    );
    // Newest first: v2 live after its trial batch, the candidate before,
    // v1 started.
    let events: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_str().unwrap())
        .collect();
    assert_eq!(events, ["live", "candidate", "started"], "{history}");
    assert_eq!(history[0][2], v2[..12]);
    assert_eq!(history[0][3], v1[..12]);
    assert_eq!(history[0][4], "none configured");
    assert!(
        history[0][5].as_str().unwrap().starts_with("passed ("),
        "{history}"
    );

    // The rollback button, confirmed in the dialog, rolls back: the status
    // API agrees and new records carry v1's tag again.
    click(&tab, "article[data-transform=tagger] button.rollback");
    wait_until(
        &tab,
        "document.getElementById('confirm').open",
        "the confirmation",
    );
    assert!(
        text(&tab, "#confirm-text")
            .as_str()
            .unwrap()
            .contains(&format!("from {} to {}", &v2[..12], &v1[..12]))
    );
    screenshot(&tab, "rollback-confirm");
    click(&tab, "#confirm-ok");
    wait_until(
        &tab,
        &format!(
            "document.getElementById('toast').textContent.includes('{} is live')",
            &v1[..12]
        ),
        "the rollback's answer",
    );
    assert_eq!(run.tagger()["live"], v1.as_str());
    let out_before = run.dir.jsonl("out/o.jsonl").len();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run.dir.jsonl("out/o.jsonl");
        if out.len() > out_before + 40 && out.last().unwrap()["tag"] == "v1" {
            break;
        }
        assert!(Instant::now() < deadline, "records never carried v1 again");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_until(
        &tab,
        "(document.querySelector('article[data-transform=tagger] .history tbody tr td:nth-child(2)') || {}).textContent === 'rollback'",
        "the rollback in the history",
    );
    screenshot(&tab, "transforms");

    // A shadow: its differences from the live version, record by record.
    replace(&run.pipeline(), &live_pipeline("v1", Some("v3")));
    click(&tab, "button[data-tab=shadow]");
    wait_until(
        &tab,
        "Number((document.querySelector('.shadow-card .differing') || {textContent: '0'}).textContent.replace(/,/g, '')) > 0",
        "the shadow's differences",
    );
    let changed = eval(
        &tab,
        "[...document.querySelector('.shadow-card .difference tr.changed').cells].map(c => c.textContent)",
    );
    assert_eq!(changed, serde_json::json!(["tag", "\"v1\"", "\"v3\""]));
    assert_eq!(
        text(&tab, ".shadow-card .by-outcome tbody td"),
        "keep -> keep"
    );
    screenshot(&tab, "shadow");
    // Promote it from the page.
    click_and_confirm(&tab, ".shadow-card button.promote");
    run.wait_for_status(
        |s| s["transforms"][0]["shadow"].is_null() && s["transforms"][0]["live"] != v1.as_str(),
        "the shadow promoted",
    );

    // Stop from the page: the run ends cleanly and every record is
    // accounted for.
    click_and_confirm(&tab, "#btn-stop");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut run = run;
    while run.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    run.feeding.store(false, Ordering::Relaxed);
    chrome.assert_no_errors();
    let out = run.dir.jsonl("out/o.jsonl");
    let dead = run.dir.jsonl("out/dead.jsonl");
    // Records are numbered from 0 in the order written: each one once.
    let mut seen: Vec<u64> = out
        .iter()
        .chain(&dead)
        .map(|v| {
            v.get("i")
                .or_else(|| v["record"]["fields"].get("i"))
                .and_then(Json::as_u64)
                .unwrap_or_else(|| panic!("no `i` in {v}"))
        })
        .collect();
    seen.sort_unstable();
    let n = seen.len() as u64;
    assert!(n > 0);
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "lost or repeated records");
    assert!(
        dead.iter()
            .all(|d| d["code"] == "invalid_email" || d["code"] == "required")
    );
}

#[test]
fn the_console_refuses_to_act_without_the_token() {
    let run = LiveRun::start();
    let chrome = Chromium::launch();
    let tab = chrome.tab();
    let bare = format!("http://{}/", run.addr);
    tab.navigate_to(&bare).unwrap();
    tab.wait_until_navigated().unwrap();
    // It asks for the token and shows nothing of the data.
    wait_until(
        &tab,
        "document.getElementById('login').hidden === false",
        "the token form",
    );
    assert_eq!(eval(&tab, "document.getElementById('main').hidden"), true);
    assert_eq!(
        eval(
            &tab,
            "[...document.querySelectorAll('button.act')].every(b => b.disabled)"
        ),
        true
    );
    screenshot(&tab, "token");
    // The feed and the actions refuse a page without the token, even one
    // served by the admin API itself.
    let feed = eval(&tab, "fetch('/events').then(r => r.status)");
    assert_eq!(feed, 401);
    let stop = eval(&tab, "fetch('/stop', {method: 'POST'}).then(r => r.status)");
    assert_eq!(stop, 401);
    // A wrong token is refused with a message.
    tab.find_element("#token-input")
        .unwrap()
        .type_into("0123456789abcdef")
        .unwrap();
    click(&tab, "#token-connect");
    wait_until(
        &tab,
        "document.getElementById('login-error').textContent.includes('refused this token')",
        "the refusal",
    );
    // The browser logged exactly those refusals (and the page's own try
    // with the wrong token), nothing else.
    let errors = chrome.take_errors();
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(
            e.contains("status of 401") && (e.contains("/events") || e.contains("/stop")),
            "{errors:#?}"
        );
    }
    // The run went on untouched.
    let before = run.status()["records_in"].as_u64().unwrap();
    run.wait_for_status(
        |s| s["records_in"].as_u64().unwrap() > before && s["stopping"] == false,
        "the run going on",
    );
    // The right token, pasted: the page connects.
    let token = run.token();
    tab.find_element("#token-input")
        .unwrap()
        .type_into(&token)
        .unwrap();
    click(&tab, "#token-connect");
    wait_until(
        &tab,
        "document.getElementById('main').hidden === false",
        "the live page",
    );
    wait_until(
        &tab,
        "!document.getElementById('btn-pause').disabled",
        "the buttons",
    );
    chrome.assert_no_errors();
    run.stop();
}

#[test]
fn the_run_report_opens_in_the_browser_and_shows_the_runs_counts() {
    let dir = Dir::new();
    let mut csv = String::from("id,email\n");
    for i in 0..500 {
        if i % 10 == 0 {
            csv.push_str(&format!("{i},not-an-address-{i}\n"));
        } else {
            csv.push_str(&format!("{i},c{i}@example.com\n"));
        }
    }
    dir.write("in/c.csv", csv);
    dir.write(
        "pipeline.toml",
        format!(
            "[source]\ntype = \"csv\"\npath = \"in/c.csv\"\n\n[[transforms]]\nname = \"validate\"\nplugin = \"{}\"\nconfig = {{ fields = {{ email = {{ email = true }} }} }}\n\n[sink]\ntype = \"jsonl\"\npath = \"out/o.jsonl\"\n\n[dead_letter]\ntype = \"jsonl\"\npath = \"out/dead.jsonl\"\n",
            plugin("validate")
        ),
    );
    let report = dir.path("report.html");
    let (out, summary) = dir.run(&["--report", report.to_str().unwrap()]);
    let summary = assert_balanced(&out, &summary);
    assert_eq!(summary["dead_lettered"], 50);

    let chrome = Chromium::launch();
    let tab = chrome.tab();
    tab.navigate_to(&format!("file://{}", report.display()))
        .unwrap();
    tab.wait_until_navigated().unwrap();
    let cards = eval(
        &tab,
        "[...document.querySelectorAll('.card')].map(c => [c.firstChild.textContent.trim(), Number(c.querySelector('b').textContent)])",
    );
    assert_eq!(
        cards,
        serde_json::json!([
            ["records in", 500],
            ["written", 450],
            ["dropped", 0],
            ["dead-lettered", 50]
        ])
    );
    assert!(
        eval(&tab, "document.body.innerText")
            .as_str()
            .unwrap()
            .contains("Every record is accounted for")
    );
    assert_eq!(
        text(&tab, "table code"),
        Json::String("validate: invalid_email".into())
    );
    screenshot(&tab, "run-report");
    chrome.assert_no_errors();
}
