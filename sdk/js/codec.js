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

// `asFloat`: a number is written as a float even when it is whole (the
// field was a float when it arrived).
export function putValue(w, v, where, asFloat = false) {
  if (v === null || v === undefined) {
    w.u8(0);
  } else if (typeof v === "string") {
    w.u8(4);
    w.str(v);
  } else if (typeof v === "number") {
    if (!asFloat && Number.isSafeInteger(v)) {
      w.u8(2);
      w.i64(v);
    } else {
      w.u8(3);
      w.f64(v);
    }
  } else if (typeof v === "boolean") {
    w.u8(1);
    w.u8(v ? 1 : 0);
  } else if (typeof v === "bigint") {
    if (v < I64_MIN || v > I64_MAX) throw new RangeError(`${where}: integer ${v} does not fit in 64 bits`);
    w.u8(2);
    w.i64(v);
  } else if (v instanceof Float) {
    w.u8(3);
    w.f64(v.value);
  } else if (v instanceof Uint8Array) {
    w.u8(5);
    w.bytes(v);
  } else if (v instanceof Timestamp) {
    w.u8(6);
    w.i64(Math.trunc(v.micros));
  } else if (v instanceof Date) {
    w.u8(6);
    w.i64(v.getTime() * 1000);
  } else if (v instanceof Json) {
    w.u8(7);
    w.str(v.text);
  } else if (typeof v === "object") {
    w.u8(7);
    w.str(JSON.stringify(v));
  } else {
    throw new TypeError(`${where}: a ${typeof v} cannot be a Sluice value`);
  }
}

export { OP_CODES };
