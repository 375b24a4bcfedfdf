#!/usr/bin/env python3
"""A legacy CRM's REST API, for the connector tests and examples.

A real HTTP server on loopback (a separate process, standard library only):

  GET  /customers?limit=N&cursor=C   paged customers, cursor paging:
                                     {"data": [...], "next_cursor": "C2" | null}
  POST /bulk                         the bulk import endpoint a sink writes to:
                                     {"records": [{"key": K, "record": {...}}]}
                                     -> {"results": [{"index": i, "status": "ok"}
                                         | {"index": i, "status": "error",
                                            "code": "...", "message": "..."}]}
                                     records are kept by key (a replayed key
                                     replaces, never duplicates) and appended to
                                     --store so that a restart keeps them
  GET  /bulk/stats                   {"requests": n, "received": n, "stored": n,
                                      "refused": n}
  GET  /log                          the cursors requested so far, in order

--tls-cert/--tls-key serve HTTPS instead of HTTP.

Faults, counted over API requests (deterministic): every --throttle-every-th
request answers 429 with Retry-After: --retry-after, every --fail-every-th
500, every --slow-every-th waits --slow-seconds first. --token makes every
request need `Authorization: Bearer TOKEN` (else 401).

The customers are generated from their id: the same --records gives the same
data on every start, so a restarted server serves the same pages.
"""

import argparse
import json
import sys
import threading
import time
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

FIRST = ["Ana", "Bjørn", "Chloé", "Dmitri", "Eéva", "Fatima", "Guo", "Hiro", "Ines", "José"]
LAST = ["Silva", "Øster", "Dubois", "Ivanov", "Kovács", "Haddad", "Wei", "Tanaka", "O'Neil", "Núñez"]
COUNTRIES = ["PT", "NO", "FR", "RU", "HU", "MA", "CN", "JP", "IE", "ES", None]


def _ascii(name):
    """A name as an address's local part: accents dropped, letters only."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def customer(i):
    """Customer `i` (1-based): varied, deterministic."""
    first, last = FIRST[i % 10], LAST[(i // 10) % 10]
    email = f"{_ascii(first)}.{_ascii(last)}{i}@example.com"
    if i % 97 == 0:
        email = f"{first} {last}"  # no @: a sink refuses it
    return {
        "id": i,
        "name": f"{first} {last}",
        "email": email,
        "country": COUNTRIES[i % 11],
        "balance": f"{(i * 7919) % 100000 / 100:.2f}",
        "active": i % 3 != 0,
        "created_at": f"20{10 + i % 15:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
        "tags": ["vip"] if i % 50 == 0 else [],
        "notes": None if i % 4 else f"line one\nline \"two\" {i}",
    }


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.requests = 0
        self.cursors = []
        self.bulk_requests = 0
        self.received = 0
        self.refused = 0
        self.stored = {}
        if args.store:
            try:
                with open(args.store, encoding="utf-8") as f:
                    for line in f:
                        if line.strip():
                            e = json.loads(line)
                            self.stored[e["key"]] = e["record"]
            except FileNotFoundError:
                pass

    def fault(self):
        """The fault for the next API request: None, 429, 500 or 'slow'."""
        with self.lock:
            self.requests += 1
            n = self.requests
        a = self.args
        if a.throttle_every and n % a.throttle_every == 0:
            return 429
        if a.fail_every and n % a.fail_every == 0:
            return 500
        if a.slow_every and n % a.slow_every == 0:
            return "slow"
        return None


def make_handler(state):
    args = state.args

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            if args.verbose:
                sys.stderr.write("legacy_crm: " + fmt % a + "\n")

        def reply(self, status, body, headers=()):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def authorised(self):
            if not args.token:
                return True
            if self.headers.get("authorization") == f"Bearer {args.token}":
                return True
            self.reply(401, {"error": "missing or wrong bearer token"})
            return False

        def faulted(self):
            f = state.fault()
            if f == 429:
                self.reply(429, {"error": "slow down"}, [("retry-after", str(args.retry_after))])
                return True
            if f == 500:
                self.reply(500, {"error": "internal error"})
                return True
            if f == "slow":
                time.sleep(args.slow_seconds)
            return False

        def do_GET(self):
            url = urlparse(self.path)
            q = parse_qs(url.query)
            if url.path == "/bulk/stats":
                with state.lock:
                    return self.reply(200, {"requests": state.bulk_requests, "received": state.received,
                                            "stored": len(state.stored), "refused": state.refused})
            if url.path == "/bulk/dump":
                with state.lock:
                    return self.reply(200, {"records": state.stored})
            if url.path == "/log":
                with state.lock:
                    return self.reply(200, {"cursors": state.cursors})
            if url.path != "/customers":
                return self.reply(404, {"error": f"no such resource {url.path}"})
            if not self.authorised() or self.faulted():
                return
            limit = min(int(q.get("limit", ["100"])[0]), 1000)
            cursor = q.get("cursor", [None])[0]
            start = int(cursor) + 1 if cursor else 1
            with state.lock:
                state.cursors.append(cursor)
            end = min(start + limit - 1, args.records)
            data = [customer(i) for i in range(start, end + 1)]
            nxt = str(end) if end < args.records else None
            self.reply(200, {"data": data, "next_cursor": nxt})

        def do_POST(self):
            url = urlparse(self.path)
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            if url.path != "/bulk":
                return self.reply(404, {"error": f"no such resource {url.path}"})
            if not self.authorised() or self.faulted():
                return
            try:
                records = json.loads(body)["records"]
            except (ValueError, KeyError, TypeError) as e:
                return self.reply(400, {"error": f"bad request: {e}"})
            results, lines = [], []
            with state.lock:
                state.bulk_requests += 1
                for i, entry in enumerate(records):
                    state.received += 1
                    rec = entry.get("record") or {}
                    email = rec.get("email")
                    if not isinstance(email, str) or "@" not in email:
                        state.refused += 1
                        results.append({"index": i, "status": "error", "code": "invalid_email",
                                        "message": f"email {email!r} is not an address"})
                        continue
                    state.stored[entry["key"]] = rec
                    lines.append(json.dumps({"key": entry["key"], "record": rec}))
                    results.append({"index": i, "status": "ok"})
                if args.store and lines:
                    with open(args.store, "a", encoding="utf-8") as f:
                        f.write("\n".join(lines) + "\n")
            self.reply(200, {"results": results})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--token", default=None)
    p.add_argument("--throttle-every", type=int, default=0)
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--slow-every", type=int, default=0)
    p.add_argument("--slow-seconds", type=float, default=2.0)
    p.add_argument("--store", default=None, help="JSONL file keeping what /bulk stored")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", default=None, help="and this private key (PEM)")
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(State(args)))
    server.daemon_threads = True
    if args.tls_cert:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
