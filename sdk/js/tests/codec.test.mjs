// Unit tests of the JavaScript SDK's batch encoding, run natively by Node
// (scripts/test.sh: `node --test sdk/js/tests/`). The end-to-end tests run
// the SDK inside components (QuickJS); these check the decoder's fast paths
// and the string-built encoder against the byte layout of codec/FORMAT.md.
//
// The SDK imports the host's `log` interface, which only exists inside a
// component: the test loads a copy of the SDK with a stand-in `log.js`.
// Node 20 lacks `Uint8Array.fromBase64` and `toBase64`, which QuickJS has.

import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

if (!Uint8Array.fromBase64) Uint8Array.fromBase64 = (s) => new Uint8Array(Buffer.from(s, "base64"));
if (!Uint8Array.prototype.toBase64) {
  Uint8Array.prototype.toBase64 = function () {
    return Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString("base64");
  };
}

const sdkDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const copy = mkdtempSync(join(tmpdir(), "sluice-js-sdk-"));
for (const f of readdirSync(sdkDir)) if (f.endsWith(".js")) copyFileSync(join(sdkDir, f), join(copy, f));
writeFileSync(join(copy, "log.js"), "export function install() {}\n");
process.on("exit", () => rmSync(copy, { recursive: true, force: true }));
const sdk = await import(join(copy, "index.js"));
const { Record, Json, Timestamp, decodeBatch, encodeBatch, encodeOutcomes, KEEP, DROP, reject, emit } = sdk;

const u32 = (n) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24];
const utf8 = (s) => [...Buffer.from(s, "utf8")];
const str = (s) => [...u32(utf8(s).length), ...utf8(s)];

test("a record is encoded byte for byte as FORMAT.md lays it out", () => {
  const r = new Record({ stream: "crm", fields: { id: 7, name: "Zoë", none: null, ok: true }, key: "k", op: "update" });
  r.position = "p1";
  const body = [
    1, // update
    ...str("crm"),
    ...str("p1"),
    0, // no event time
    4, ...str("k"),
    ...u32(0), // headers
    ...u32(4),
    ...str("id"), 2, 7, 0, 0, 0, 0, 0, 0, 0,
    ...str("name"), 4, ...str("Zoë"),
    ...str("none"), 0,
    ...str("ok"), 1, 1,
  ];
  const expected = [1, ...u32(1), ...u32(body.length), ...body];
  assert.deepEqual([...encodeBatch([r])], expected);
});

test("outcomes: unchanged keep, changed keep, drop, reject and emit", () => {
  const [a, b, c, d, e] = decodeBatch(encodeBatch([0, 1, 2, 3, 4].map((i) => new Record({ stream: "s", fields: { i } }))));
  b.set("i", 9);
  const out = [...encodeOutcomes([a, b, c, d, e], [KEEP, KEEP, DROP, reject("bad", "says why", "i"), emit(e, e)])];
  const rec = (i) => {
    const body = [0, ...str("s"), ...str(""), 0, 0, ...u32(0), ...u32(1), ...str("i"), 2, i, 0, 0, 0, 0, 0, 0, 0];
    return [...u32(body.length), ...body];
  };
  assert.deepEqual(out, [
    1, ...u32(5),
    0,
    1, ...rec(9),
    3,
    4, ...str("bad"), 1, ...str("i"), ...str("says why"),
    2, ...u32(2), ...rec(4), ...rec(4),
  ]);
});

test("records of changing shapes decode as they were encoded", () => {
  // Names reordered, added and dropped, and text turning into other kinds
  // between neighbours: what the decoder's shape fast path must not mistake.
  let seed = 11;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const kinds = [null, true, 7, -1, 2 ** 53 - 1, -(2n ** 63n), 1.5, "", "é€😀", new Uint8Array([0, 255]), new Timestamp(-5), new Json('{"a":1}')];
  const names = ["a", "bb", "é", "CUST_NO", "x".repeat(300)];
  const records = [];
  for (let i = 0; i < 2000; i++) {
    const fields = new Map();
    for (const n of names) if (rnd() < 0.6) fields.set(n, rnd() < 0.5 ? "v" + Math.floor(rnd() * 1000) + "é".repeat(Math.floor(rnd() * 3)) : pick(kinds));
    const r = new Record({ stream: pick(["s", "tt"]), fields, key: pick([null, 5, "k"]), op: pick(["insert", "delete"]), headers: rnd() < 0.2 ? [["h", "v"]] : [] });
    r.position = `p${i}`;
    r.eventTime = pick([null, 12345, -1]);
    records.push(r);
  }
  for (const size of [1, 7, 256, 2000]) {
    for (let at = 0; at < records.length; at += size) {
      const chunk = records.slice(at, at + size);
      const decoded = decodeBatch(encodeBatch(chunk));
      assert.equal(decoded.length, chunk.length);
      decoded.forEach((d, i) => {
        const r = chunk[i];
        assert.deepEqual([...d.fields()], [...r.fields()]);
        assert.deepEqual([d.stream, d.op, d.key, d.position, d.eventTime, d.headers], [r.stream, r.op, r.key, r.position, r.eventTime, r.headers]);
      });
    }
  }
});

test("a lone surrogate is written as U+FFFD, as the other SDKs do", () => {
  const [r] = decodeBatch(encodeBatch([new Record({ fields: { t: "a\ud800b" } })]));
  assert.equal(r.get("t"), "a\ufffdb");
});

test("every truncation, trailing bytes and invalid UTF-8 are refused", () => {
  const bytes = encodeBatch([0, 1, 2].map((i) => new Record({ stream: "s", fields: { i, t: "é" } })));
  for (let cut = 0; cut < bytes.length; cut++) {
    assert.throws(() => decodeBatch(bytes.subarray(0, cut)), sdk.MalformedBatch);
  }
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assert.throws(() => decodeBatch(longer), /trail/);
  const bad = bytes.slice();
  bad[bad.length - 1] = 0xff; // the last byte of the last "é"
  assert.throws(() => decodeBatch(bad), /invalid UTF-8/);
});
