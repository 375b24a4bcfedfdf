//! `sluice plugin new NAME --kind source|sink`: a connector that builds and
//! passes the conformance kit as generated, against the small test server
//! it comes with (`test_server.py`, Python standard library only), which
//! the vendor replaces with their own test system.

use std::path::Path;

use anyhow::bail;

use crate::toolchain::Language;

/// The test server of every connector template: a paged API
/// (`GET /items?after=N&limit=M`) and a bulk endpoint (`POST /bulk`,
/// `GET /count`).
const TEST_SERVER: &str = r#"#!/usr/bin/env python3
"""A stand-in for the system the connector talks to, for `sluice plugin test`.

  GET  /items?after=N&limit=M  ->  {"items": [{"id": ..., "name": ...}], "next": N2 | null}
  POST /bulk  {"records": [{"key": K, "record": {...}}]}  ->  {"results": [{"index": i, "status": "ok"}]}
  GET  /count  ->  how many distinct keys /bulk holds

Replace it with your own system's sandbox in conformance.toml.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

RECORDS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
STORED = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        time.sleep(0.05)  # a real system takes time: the kit's kill lands mid-run
        if url.path == "/count":
            return self.reply(200, str(len(STORED)).encode())
        if url.path != "/items":
            return self.reply(404, {"error": "not found"})
        after = int(q.get("after", ["0"])[0])
        limit = int(q.get("limit", ["100"])[0])
        last = min(after + limit, RECORDS)
        items = [{"id": i, "name": "item %d" % i} for i in range(after + 1, last + 1)]
        self.reply(200, {"items": items, "next": last if last < RECORDS else None})

    def do_POST(self):
        time.sleep(0.05)
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        for entry in body["records"]:
            STORED[entry["key"]] = entry["record"]
        self.reply(200, {"results": [{"index": i, "status": "ok"} for i in range(len(body["records"]))]})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
"#;

fn manifest(name: &str, kind: &str) -> String {
    format!(
        r#"# The manifest `sluice plugin build` puts inside the component: what the
# connector is and what it asks the operator to grant.
name = "{name}"
version = "0.1.0"
kind = "{kind}"
description = "TODO: one line on what it {what}"

[capabilities]
http = true

[config.url]
required = true
description = "{url_desc}"
"#,
        what = if kind == "source" { "reads" } else { "writes" },
        url_desc = if kind == "source" {
            "the items endpoint, e.g. http://127.0.0.1:8080/items"
        } else {
            "the bulk endpoint, e.g. http://127.0.0.1:8080/bulk"
        },
    )
}

fn conformance(kind: &str) -> String {
    let (path, count) = if kind == "source" {
        ("items", "")
    } else {
        (
            "bulk",
            "count = [\"python3\", \"-c\", \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/count').read().decode())\"]\n",
        )
    };
    format!(
        r#"# How `sluice plugin test` (the conformance kit) reaches a test system:
# `server` is started afresh for each check; `{{port}}` comes from the
# `:PORT` at the end of the first line it prints.
server = ["python3", "{{dir}}/test_server.py", "2000"]
records = 2000
key = "id"
{count}
[config]
url = "http://127.0.0.1:{{port}}/{path}"

[grants]
http = ["http://127.0.0.1:{{port}}"]
"#
    )
}

fn readme(name: &str, kind: &str, lang: &str) -> String {
    let side = if kind == "source" { "source" } else { "sink" };
    format!(
        r#"# {name}

A Sluice {kind} connector in {lang}.

```sh
sluice plugin build          # writes build/{name}.wasm (with connector.toml inside)
sluice plugin test           # the conformance kit, against test_server.py
sluice plugin inspect build/{name}.wasm
```

`conformance.toml` says how the kit reaches a test system; replace
`test_server.py` with your own system's sandbox. Sign a release with
`sluice plugin keygen vendor` and `sluice plugin sign build/{name}.wasm --key
vendor.key`. An operator runs it with:

```toml
[{side}]
type = "wasm"
path = "{name}/build/{name}.wasm"
config = {{ url = "https://api.example.com/..." }}

[{side}.grants]
http = ["https://api.example.com"]
```

See docs/connectors.md in the Sluice repository.
"#
    )
}

/// Writes a connector template.
pub(super) fn write_connector(
    dir: &Path,
    name: &str,
    kind: &str,
    lang: Language,
    sdk: Option<&Path>,
    write: &dyn Fn(&Path, &str, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    write(dir, "connector.toml", &manifest(name, kind))?;
    write(dir, "conformance.toml", &conformance(kind))?;
    write(dir, "test_server.py", TEST_SERVER)?;
    match (kind, lang) {
        (_, Language::Rust) => {
            let sdk = sdk.map(|p| p.display().to_string().replace('\\', "/"));
            let Some(sdk) = sdk else {
                bail!("the Rust SDK path is needed");
            };
            write(
                dir,
                "Cargo.toml",
                &format!(
                    r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
sluice-sdk = {{ path = "{sdk}", default-features = false, features = ["{kind}"] }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[profile.release]
strip = true

# A connector is its own workspace, even inside another project's tree.
[workspace]
"#
                ),
            )?;
            let code = if kind == "source" {
                RUST_SOURCE
            } else {
                RUST_SINK
            };
            write(dir, "src/lib.rs", &code.replace("NAME", name))?;
            write(dir, "README.md", &readme(name, kind, "Rust"))?;
        }
        ("sink", Language::Python) => {
            write(
                dir,
                "pyproject.toml",
                &format!("[project]\nname = \"{name}\"\nversion = \"0.1.0\"\n"),
            )?;
            write(dir, "plugin.py", &PYTHON_SINK.replace("NAME", name))?;
            write(dir, "README.md", &readme(name, kind, "Python"))?;
        }
        ("source", Language::Python) => {
            write(
                dir,
                "pyproject.toml",
                &format!("[project]\nname = \"{name}\"\nversion = \"0.1.0\"\n"),
            )?;
            write(dir, "plugin.py", &PYTHON_SOURCE.replace("NAME", name))?;
            write(dir, "README.md", &readme(name, kind, "Python"))?;
        }
        (_, Language::Js) => {
            write(
                dir,
                "package.json",
                &format!(
                    "{{\n  \"name\": \"{name}\",\n  \"version\": \"0.1.0\",\n  \"type\": \"module\",\n  \"private\": true\n}}\n"
                ),
            )?;
            let code = if kind == "source" { JS_SOURCE } else { JS_SINK };
            write(dir, "plugin.js", &code.replace("NAME", name))?;
            write(dir, "README.md", &readme(name, kind, "JavaScript"))?;
        }
        (_, other) => {
            bail!("connectors can be written in Rust, Python or JavaScript, not {other} yet")
        }
    }
    Ok(())
}

const RUST_SOURCE: &str = r#"//! `NAME`: a Sluice source connector. It reads a paged JSON API
//! (`GET url?after=N&limit=M` answering `{"items": [...], "next": N2 | null}`);
//! its position is the last `after` it read, so a restart resumes there.

use std::time::Duration;

use serde::Deserialize;
use sluice_sdk::connector::{ConnectorError, Polled, Source};
use sluice_sdk::http::Request;
use sluice_sdk::{Config, Operation, Record, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
}

struct Connector {
    url: String,
    /// The last item read (0: none); `None` once the API said there is no more.
    after: Option<u64>,
}

impl Source for Connector {
    fn open(config: Config, resume: Option<String>) -> Result<Self, ConnectorError> {
        let s: Settings = config.parse()?;
        let after = match resume.as_deref() {
            None => Some(0),
            Some("end") => None,
            Some(p) => Some(p.parse().map_err(|_| {
                ConnectorError::Fatal(format!("cannot resume from `{p}` (run with --reset)"))
            })?),
        };
        Ok(Connector { url: s.url, after })
    }

    fn poll(&mut self, max: usize, _wait: Duration) -> Result<Polled, ConnectorError> {
        let Some(after) = self.after else {
            return Ok(Polled { end_of_data: true, ..Default::default() });
        };
        let url = format!("{}?after={after}&limit={}", self.url, max.min(1000));
        let resp = Request::get(&url).send()?;
        match resp.status {
            200 => {}
            429 | 500.. => {
                return Err(ConnectorError::Transient(format!("{url}: {}", resp.status)));
            }
            s => return Err(ConnectorError::Fatal(format!("{url}: HTTP {s}"))),
        }
        #[derive(Deserialize)]
        struct Page {
            items: Vec<serde_json::Map<String, serde_json::Value>>,
            next: Option<u64>,
        }
        let page: Page = serde_json::from_slice(&resp.body)
            .map_err(|e| ConnectorError::Transient(format!("{url}: not the expected JSON: {e}")))?;
        let position = match page.next {
            Some(n) => n.to_string(),
            None => "end".to_string(),
        };
        let mut records = Vec::new();
        for item in page.items {
            let mut r = Record::new("items");
            r.set_op(Operation::Snapshot);
            for (k, v) in item {
                let value = match v {
                    serde_json::Value::Null => Value::Null,
                    serde_json::Value::Bool(b) => Value::Bool(b),
                    serde_json::Value::Number(n) => n
                        .as_i64()
                        .map(Value::Int)
                        .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
                    serde_json::Value::String(s) => Value::Text(s.into()),
                    other => Value::Json(other.to_string().into()),
                };
                if k == "id" {
                    r.set_key(value.clone());
                }
                r.set(k, value);
            }
            r.set_position(position.clone());
            records.push(r);
        }
        self.after = page.next;
        Ok(Polled {
            records,
            position: Some(position),
            end_of_data: self.after.is_none(),
            ..Default::default()
        })
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export_source!(Connector);
"#;

const RUST_SINK: &str = r#"//! `NAME`: a Sluice sink connector. It POSTs each batch to a bulk
//! endpoint as `{"records": [{"key": K, "record": {...}}]}`; `K` is the
//! host's idempotency key, so a replayed batch replaces what it wrote.

use serde::Deserialize;
use sluice_sdk::connector::{ConnectorError, Refusal, Sink};
use sluice_sdk::http::Request;
use sluice_sdk::{Config, Record, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
}

struct Connector {
    url: String,
}

fn json(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Text(s) => s.as_ref().into(),
        Value::Json(j) => serde_json::from_str(j.as_ref()).unwrap_or(serde_json::Value::Null),
        Value::Timestamp(t) => (*t).into(),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect::<String>().into(),
    }
}

impl Sink for Connector {
    fn open(config: Config) -> Result<Self, ConnectorError> {
        let s: Settings = config.parse()?;
        Ok(Connector { url: s.url })
    }

    fn write(&mut self, records: &[Record<'_>], keys: &[String]) -> Result<Vec<Refusal>, ConnectorError> {
        let body: Vec<serde_json::Value> = records
            .iter()
            .zip(keys)
            .map(|(r, k)| {
                let fields: serde_json::Map<String, serde_json::Value> =
                    r.fields().map(|(n, v)| (n.to_string(), json(v))).collect();
                serde_json::json!({ "key": k, "record": fields })
            })
            .collect();
        let body = serde_json::json!({ "records": body }).to_string();
        let resp = Request::post(&self.url, body)
            .header("content-type", "application/json")
            .send()?;
        match resp.status {
            200 => Ok(Vec::new()),
            429 | 500.. => Err(ConnectorError::Transient(format!("{}: {}", self.url, resp.status))),
            s => Err(ConnectorError::Fatal(format!("{}: HTTP {s}", self.url))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export_sink!(Connector);
"#;

const PYTHON_SINK: &str = r#""""`NAME`: a Sluice sink connector. It POSTs each batch to a bulk endpoint
as {"records": [{"key": K, "record": {...}}]}; K is the host's idempotency
key, so a replayed batch replaces what it wrote."""

import json

import sluice_sdk as sluice
from sluice_sdk import connector, http


class Connector(connector.Sink):
    def open(self, config):
        self.url = config.get("url")
        if not isinstance(self.url, str):
            raise sluice.InvalidConfig("`url`: give the bulk endpoint")

    def write(self, records, keys):
        body = json.dumps(
            {"records": [{"key": k, "record": dict(r)} for r, k in zip(records, keys)]},
            default=str,
        )
        try:
            resp = http.request("POST", self.url, {"content-type": "application/json"}, body)
        except http.HttpError as e:
            raise connector.Fatal(str(e)) if e.denied else connector.Transient(str(e))
        if resp.status == 429 or resp.status >= 500:
            raise connector.Transient("%s answered %d" % (self.url, resp.status))
        if resp.status != 200:
            raise connector.Fatal("%s answered %d" % (self.url, resp.status))
        return []
"#;

const PYTHON_SOURCE: &str = r#""""`NAME`: a Sluice source connector. It reads a paged JSON API
(GET url?after=N&limit=M answering {"items": [...], "next": N2 | null}); its
position is the last `after` it read, so a restart resumes there."""

import sluice_sdk as sluice
from sluice_sdk import connector, http


class Connector(connector.Source):
    def open(self, config, resume):
        self.url = config.get("url")
        if not isinstance(self.url, str):
            raise sluice.InvalidConfig("`url`: give the items endpoint")
        if resume is None:
            self.after = 0
        elif resume == "end":
            self.after = None
        elif resume.isdigit():
            self.after = int(resume)
        else:
            raise connector.Fatal("cannot resume from %r (run with --reset)" % resume)

    def poll(self, max_records, max_wait_ms):
        if self.after is None:
            return connector.Polled(end_of_data=True)
        url = "%s?after=%d&limit=%d" % (self.url, self.after, min(max_records, 1000))
        try:
            resp = http.request("GET", url)
        except http.HttpError as e:
            raise connector.Fatal(str(e)) if e.denied else connector.Transient(str(e))
        if resp.status == 429 or resp.status >= 500:
            raise connector.Transient("%s answered %d" % (url, resp.status))
        if resp.status != 200:
            raise connector.Fatal("%s answered %d" % (url, resp.status))
        try:
            page = resp.json()
            items, after = page["items"], page["next"]
        except (ValueError, KeyError, TypeError) as e:
            raise connector.Transient("%s: not the expected JSON: %s" % (url, e))
        records = [sluice.Record("items", item, key=item.get("id"), op="snapshot") for item in items]
        self.after = after
        position = "end" if after is None else str(after)
        return connector.Polled(records, position, end_of_data=after is None)
"#;

const JS_SOURCE: &str = r#"// `NAME`: a Sluice source connector. It reads a paged JSON API
// (GET url?after=N&limit=M answering {"items": [...], "next": N2 | null}); its
// position is the last `after` it read, so a restart resumes there.
import { InvalidConfig, Record } from "sluice-sdk";
import { Fatal, Transient } from "sluice-sdk/connector.js";
import * as http from "sluice-sdk/http.js";

export default class Connector {
  open(config, resume) {
    if (typeof config.url !== "string") throw new InvalidConfig("`url`: give the items endpoint");
    this.url = config.url;
    if (resume === null) this.after = 0;
    else if (resume === "end") this.after = null;
    else if (/^[0-9]+$/.test(resume)) this.after = Number(resume);
    else throw new Fatal(`cannot resume from ${JSON.stringify(resume)} (run with --reset)`);
  }

  poll(maxRecords, maxWaitMs) {
    if (this.after === null) return { records: [], position: null, endOfData: true };
    const url = `${this.url}?after=${this.after}&limit=${Math.min(maxRecords, 1000)}`;
    let resp;
    try {
      resp = http.request("GET", url);
    } catch (e) {
      throw e.denied ? new Fatal(e.message) : new Transient(e.message);
    }
    if (resp.status === 429 || resp.status >= 500) throw new Transient(`${url} answered ${resp.status}`);
    if (resp.status !== 200) throw new Fatal(`${url} answered ${resp.status}`);
    let page;
    try {
      page = resp.json();
    } catch (e) {
      throw new Transient(`${url}: not JSON: ${e.message}`);
    }
    if (!Array.isArray(page.items)) throw new Transient(`${url}: no "items" list`);
    const records = page.items.map((item) => new Record({ stream: "items", fields: item, key: item.id ?? null, op: "snapshot" }));
    this.after = page.next ?? null;
    const position = this.after === null ? "end" : String(this.after);
    return { records, position, endOfData: this.after === null };
  }
}
"#;

const JS_SINK: &str = r#"// `NAME`: a Sluice sink connector. It POSTs each batch to a bulk endpoint
// as {"records": [{"key": K, "record": {...}}]}; K is the host's idempotency
// key, so a replayed batch replaces what it wrote.
import { InvalidConfig } from "sluice-sdk";
import { Fatal, Transient } from "sluice-sdk/connector.js";
import * as http from "sluice-sdk/http.js";

export default class Connector {
  open(config) {
    if (typeof config.url !== "string") throw new InvalidConfig("`url`: give the bulk endpoint");
    this.url = config.url;
  }

  write(records, keys) {
    const body = JSON.stringify({
      records: records.map((r, i) => ({ key: keys[i], record: r.toJSON() })),
    });
    let resp;
    try {
      resp = http.request("POST", this.url, { headers: { "content-type": "application/json" }, body });
    } catch (e) {
      throw e.denied ? new Fatal(e.message) : new Transient(e.message);
    }
    if (resp.status === 429 || resp.status >= 500) throw new Transient(`${this.url} answered ${resp.status}`);
    if (resp.status !== 200) throw new Fatal(`${this.url} answered ${resp.status}`);
    return []; // or [{ index, code, message }, ...]: those records are dead-lettered
  }
}
"#;
