// The Sluice batch encoding, version 1 (codec/FORMAT.md), in JavaScript.
// QuickJS has no TextEncoder/TextDecoder: UTF-8 is converted here, with a
// fast path for ASCII.

/** The source operations, in their encoding order. */
export const OPERATIONS = ["insert", "update", "delete", "snapshot"];
const OP_CODES = { insert: 0, update: 1, delete: 2, snapshot: 3 };
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** A JSON object or array value, kept as its text; `value` parses it. */
export class Json {
  constructor(text) {
    this.text = String(text);
  }
  /** The compact JSON text of an object or array. */
  static of(obj) {
    return new Json(JSON.stringify(obj));
  }
  /** The parsed object or array (a fresh copy each time). */
  get value() {
    return JSON.parse(this.text);
  }
}

/** A point in time: microseconds since 1970-01-01T00:00:00Z (UTC). */
export class Timestamp {
  constructor(micros) {
    this.micros = Number(micros);
  }
  /** A Timestamp from a JS Date (millisecond precision). */
  static fromDate(d) {
    return new Timestamp(d.getTime() * 1000);
  }
  /** This time as a JS Date (millisecond precision). */
  toDate() {
    return new Date(Math.floor(this.micros / 1000));
  }
  toJSON() {
    return this.toDate().toISOString();
  }
}

/** An explicit 64-bit float, for a whole number that must stay a float. */
export class Float {
  constructor(v) {
    this.value = Number(v);
  }
}

export class MalformedBatch extends Error {}

const NON_ASCII = /[\x80-\xff]/;

// Native code does the work: bytes to a Latin-1 string, and for the rare
// non-ASCII text, escape() + decodeURIComponent() decode the UTF-8 (and
// refuse invalid UTF-8).
export function utf8Decode(b, start, end) {
  if (end - start > 8192) {
    let s = "";
    for (let i = start; i < end; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, Math.min(end, i + 8192)));
    return finishUtf8(s, start);
  }
  return finishUtf8(String.fromCharCode.apply(null, b.subarray(start, end)), start);
}

function finishUtf8(latin1, at) {
  if (!NON_ASCII.test(latin1)) return latin1;
  try {
    return decodeURIComponent(escape(latin1));
  } catch {
    throw new MalformedBatch(`invalid UTF-8 in the string at byte ${at}`);
  }
}

const ENCODED = new Map();

/** A growable byte buffer. */
export class Writer {
  constructor(cap = 4096) {
    this.buf = new Uint8Array(cap);
    this.view = new DataView(this.buf.buffer);
    this.len = 0;
  }
  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
    this.view = new DataView(nb.buffer);
  }
  u8(v) {
    this.reserve(1);
    this.buf[this.len++] = v;
  }
  u32(v) {
    this.reserve(4);
    this.view.setUint32(this.len, v, true);
    this.len += 4;
  }
  putU32At(at, v) {
    this.view.setUint32(at, v, true);
  }
  i64(v) {
    this.reserve(8);
    if (typeof v === "number") {
      // Two 32-bit halves: no BigInt for the usual safe integers.
      const lo = v % 4294967296;
      const hi = Math.floor(v / 4294967296);
      this.view.setUint32(this.len, lo < 0 ? lo + 4294967296 : lo, true);
      this.view.setInt32(this.len + 4, hi, true);
    } else {
      this.view.setBigInt64(this.len, v, true);
    }
    this.len += 8;
  }
  f64(v) {
    this.reserve(8);
    this.view.setFloat64(this.len, v, true);
    this.len += 8;
  }
  bytes(b) {
    this.u32(b.length);
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  str(s) {
    if (s.length <= 32) {
      // Field names and short values repeat: copy their bytes natively.
      let e = ENCODED.get(s);
      if (e === undefined) {
        const w = new Writer(4 + s.length * 3);
        w.strSlow(s);
        e = w.buf.slice(0, w.len);
        if (ENCODED.size >= 4096) ENCODED.clear();
        ENCODED.set(s, e);
      }
      this.reserve(e.length);
      this.buf.set(e, this.len);
      this.len += e.length;
      return;
    }
    this.strSlow(s);
  }
  strSlow(s) {
    // At most 3 bytes per UTF-16 unit.
    this.reserve(4 + s.length * 3);
    const at = this.len;
    let p = at + 4;
    const b = this.buf;
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        b[p++] = c;
      } else if (c < 0x800) {
        b[p++] = 0xc0 | (c >> 6);
        b[p++] = 0x80 | (c & 0x3f);
      } else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
        b[p++] = 0xf0 | (c >> 18);
        b[p++] = 0x80 | ((c >> 12) & 0x3f);
        b[p++] = 0x80 | ((c >> 6) & 0x3f);
        b[p++] = 0x80 | (c & 0x3f);
      } else {
        if (c >= 0xd800 && c < 0xe000) c = 0xfffd; // a lone surrogate
        b[p++] = 0xe0 | (c >> 12);
        b[p++] = 0x80 | ((c >> 6) & 0x3f);
        b[p++] = 0x80 | (c & 0x3f);
      }
    }
    this.view.setUint32(at, p - at - 4, true);
    this.len = p;
  }
  finish() {
    return this.buf.subarray(0, this.len);
  }
}

// Batches and outcomes are built as binary strings (one character per
// byte) and turned into bytes once, natively: QuickJS has no TextEncoder,
// but it has `encodeURIComponent`/`unescape` (a string's UTF-8 bytes as
// such a string) and `btoa`/`Uint8Array.fromBase64`. A byte loop in
// JavaScript costs more per character than these calls cost per string.
const CH = String.fromCharCode;
const SCRATCH = new DataView(new ArrayBuffer(8));
const SCRATCH_BYTES = new Uint8Array(SCRATCH.buffer);

/** `n` as four little-endian bytes, a binary string. */
export function u32s(n) {
  return CH(n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24);
}

/** The UTF-8 bytes of `s` as a binary string; a lone surrogate becomes U+FFFD. */
export function utf8s(s) {
  try {
    return unescape(encodeURIComponent(s));
  } catch {
    return unescape(encodeURIComponent(s.toWellFormed()));
  }
}

function scratch8() {
  const b = SCRATCH_BYTES;
  return CH(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
}

/** A 64-bit integer (a safe integer number or a bigint), eight bytes. */
export function i64s(v) {
  if (typeof v === "number") {
    const lo = v % 4294967296;
    SCRATCH.setUint32(0, lo < 0 ? lo + 4294967296 : lo, true);
    SCRATCH.setInt32(4, Math.floor(v / 4294967296), true);
  } else {
    SCRATCH.setBigInt64(0, v, true);
  }
  return scratch8();
}

function f64s(v) {
  SCRATCH.setFloat64(0, v, true);
  return scratch8();
}

const NAMES = new Map();

/** `len:u32 utf8` of a string that repeats (names, streams): cached. */
export function nameS(s) {
  let e = NAMES.get(s);
  if (e === undefined) {
    const u = utf8s(String(s));
    e = u32s(u.length) + u;
    if (NAMES.size >= 4096) NAMES.clear();
    NAMES.set(s, e);
  }
  return e;
}

/** `len:u32 utf8` of any string. */
export function strS(s) {
  const u = utf8s(s);
  return u32s(u.length) + u;
}

/** A binary string's bytes. */
export function bytesOf(s) {
  return s.length === 0 ? new Uint8Array(0) : Uint8Array.fromBase64(btoa(s));
}

/** One value, tag first, as a binary string (the encoding of codec/FORMAT.md). */
export function valueS(v, field, asFloat = false) {
  if (typeof v === "string") {
    const u = utf8s(v);
    return "\x04" + u32s(u.length) + u;
  }
  if (v === null || v === undefined) return "\x00";
  if (typeof v === "number") {
    return !asFloat && Number.isSafeInteger(v) ? "\x02" + i64s(v) : "\x03" + f64s(v);
  }
  if (typeof v === "boolean") return v ? "\x01\x01" : "\x01\x00";
  if (typeof v === "bigint") {
    if (v < I64_MIN || v > I64_MAX) throw new RangeError(`${where(field)}: integer ${v} does not fit in 64 bits`);
    return "\x02" + i64s(v);
  }
  if (v instanceof Float) return "\x03" + f64s(v.value);
  if (v instanceof Uint8Array) return "\x05" + u32s(v.length) + (v.length === 0 ? "" : atob(v.toBase64()));
  if (v instanceof Timestamp) return "\x06" + i64s(Math.trunc(v.micros));
  if (v instanceof Date) return "\x06" + i64s(v.getTime() * 1000);
  if (v instanceof Json) return "\x07" + strS(v.text);
  if (typeof v === "object") return "\x07" + strS(JSON.stringify(v));
  throw new TypeError(`${where(field)}: a ${typeof v} cannot be a Sluice value`);
}

function where(field) {
  return field === null ? "the record key" : `field \`${field}\``;
}

export { OP_CODES };
