// Write Sluice transform plugins in JavaScript.
//
// The smallest plugin (plugin.js):
//
//   import { KEEP } from "sluice-sdk";
//   export default class Trim {
//     init(config) { this.field = config.field ?? "name"; }
//     process(record) {
//       const v = record.get(this.field);
//       if (typeof v === "string") record.set(this.field, v.trim());
//       return KEEP;
//     }
//   }
//
// `sluice plugin build` turns it into a component (QuickJS, componentize-qjs).
// The SDK decodes each batch into Record objects, calls `process` for each
// (or your `processBatch`) and encodes the outcomes: the concepts and names
// are those of the Rust SDK.

import { Float, Json, MalformedBatch, OPERATIONS, OP_CODES, Timestamp, Writer, bytesOf, i64s, nameS, strS, u32s, valueS } from "./codec.js";
import * as log from "./log.js";

export { Float, Json, OPERATIONS, Timestamp, log };

/** Keep the record, with any changes made to it (`undefined` means the same). */
export const KEEP = Object.freeze({ outcome: "keep" });
/** Filter the record out on purpose: it is counted, not dead-lettered. */
export const DROP = Object.freeze({ outcome: "drop" });

/** Refuse the record: it goes to the dead-letter sink with this reason. */
export class Reject {
  constructor(code, message, field = null) {
    this.code = String(code);
    this.message = String(message);
    this.field = field === null || field === undefined ? null : String(field);
  }
}

/** Replace the record by these records (none, one or many). */
export class Emit {
  constructor(records) {
    this.records = Array.from(records);
  }
}

/** Refuse the record (optionally naming the field at fault). */
export function reject(code, message, field = null) {
  return new Reject(code, message, field);
}

/** Replace the record by `records` (`emit()` emits nothing). */
export function emit(...records) {
  if (records.length === 1 && Array.isArray(records[0])) records = records[0];
  return new Emit(records);
}

/** A whole number that must be written as a 64-bit float. */
export function float(v) {
  return new Float(v);
}

/** Throw from `init` when the config is wrong: name the key and what is expected. */
export class InvalidConfig extends Error {
  constructor(message) {
    super(message);
    this.name = "InvalidConfig";
  }
}

/** One record: fields by name (`get`/`set`), plus stream, op, key, headers. */
export class Record {
  constructor({ stream = "", fields = {}, key = null, op = "insert", headers = [] } = {}) {
    if (!(op in OP_CODES)) throw new RangeError(`op must be one of ${OPERATIONS.join(", ")}, not ${op}`);
    this._fields = new Map(fields instanceof Map ? fields : Object.entries(fields));
    this._floats = null;
    this._stream = String(stream);
    this._op = op;
    this._key = key;
    this._headers = headers.map(([n, v]) => [String(n), toBytes(v)]);
    /** The source position (the host keeps the input's). */
    this.position = "";
    /** When the event happened at the source, in microseconds since the epoch, or null. */
    this.eventTime = null;
    this._changed = true;
  }

  /** The value of field `name`, or `undefined` when absent. */
  get(name) {
    return this._fields.get(name);
  }
  /** Sets field `name` (added at the end when new). */
  set(name, value) {
    this._fields.set(name, value);
    this._changed = true;
  }
  /** Sets field `name` to null. */
  setNull(name) {
    this.set(name, null);
  }
  /** True when the record has field `name` (even if it is null). */
  has(name) {
    return this._fields.has(name);
  }
  /** Removes field `name`; returns its value (`undefined` when absent). */
  remove(name) {
    const v = this._fields.get(name);
    if (this._fields.delete(name)) this._changed = true;
    return v;
  }
  /** Renames field `from` to `to` in place; false when `from` is absent. */
  rename(from, to) {
    if (!this._fields.has(from)) return false;
    const next = new Map();
    for (const [k, v] of this._fields) next.set(k === from ? to : k, v);
    this._fields = next;
    if (this._floats?.delete(from)) this._floats.add(to);
    this._changed = true;
    return true;
  }
  /**
   * The type of field `name` as the WIT `value` variant names it: `null`,
   * `boolean`, `integer`, `float`, `text`, `bytes`, `timestamp`, `json`;
   * `undefined` when absent. Tells a float `2.0` from an integer `2`.
   */
  kind(name) {
    if (!this._fields.has(name)) return undefined;
    const v = this._fields.get(name);
    if (v === null || v === undefined) return "null";
    if (typeof v === "boolean") return "boolean";
    if (typeof v === "bigint") return "integer";
    if (typeof v === "number") return this._floats?.has(name) || !Number.isSafeInteger(v) ? "float" : "integer";
    if (typeof v === "string") return "text";
    if (v instanceof Float) return "float";
    if (v instanceof Uint8Array) return "bytes";
    if (v instanceof Timestamp || v instanceof Date) return "timestamp";
    return "json";
  }
  /** The fields as `[name, value]` pairs, in order. */
  fields() {
    return this._fields.entries();
  }
  /** The fields as a plain object. */
  toObject() {
    return Object.fromEntries(this._fields);
  }
  /** The number of fields. */
  get size() {
    return this._fields.size;
  }
  /** The stream or table name; set it to route the record elsewhere. */
  get stream() {
    return this._stream;
  }
  set stream(v) {
    this._stream = String(v);
    this._changed = true;
  }
  /** `insert`, `update`, `delete` or `snapshot`. */
  get op() {
    return this._op;
  }
  set op(v) {
    if (!(v in OP_CODES)) throw new RangeError(`op must be one of ${OPERATIONS.join(", ")}, not ${v}`);
    this._op = v;
    this._changed = true;
  }
  /** The record key (a value) or null. */
  get key() {
    return this._key;
  }
  set key(v) {
    this._key = v;
    this._changed = true;
  }
  /** The headers, as `[name, Uint8Array]` pairs (a copy; use `addHeader`). */
  get headers() {
    return this._headers.slice();
  }
  /** The bytes of the first header called `name`, or null. */
  header(name) {
    const h = this._headers.find(([n]) => n === name);
    return h ? h[1] : null;
  }
  /** Appends a header (`value`: a Uint8Array or a string). */
  addHeader(name, value) {
    this._headers.push([String(name), toBytes(value)]);
    this._changed = true;
  }
  /**
   * The fields as a plain object of JSON values (what `JSON.stringify` of a
   * record writes): integers beyond 2^53 as strings, bytes as lower-case
   * hex, timestamps as ISO 8601 text, JSON fields as their value.
   */
  toJSON() {
    const out = {};
    for (const [k, v] of this._fields) {
      if (typeof v === "bigint") out[k] = String(v);
      else if (v instanceof Uint8Array) out[k] = Array.from(v, (x) => x.toString(16).padStart(2, "0")).join("");
      else if (v instanceof Float) out[k] = v.value;
      else if (v instanceof Json) out[k] = v.value;
      else out[k] = v;
    }
    return out;
  }
  /** A new record with the same fields, metadata and headers. */
  copy() {
    const r = new Record({ stream: this._stream, fields: this._fields, key: this._key, op: this._op, headers: this._headers });
    r._floats = this._floats ? new Set(this._floats) : null;
    r.position = this.position;
    r.eventTime = this.eventTime;
    return r;
  }
}

function toBytes(v) {
  if (v instanceof Uint8Array) return v;
  const w = new Writer(16);
  w.str(String(v));
  return w.finish().slice(4);
}

// The batch's bytes as a string of one character per byte (two native
// passes: QuickJS has `toBase64` and `atob`).
function latin1Of(b) {
  return b.length === 0 ? "" : atob(b.toBase64());
}

const HIGH = /[\x80-\xff]/g;

// One function with local reads: method calls cost more than the reads
// themselves in QuickJS, so the decoder is written out inline. Strings are
// cut out of the batch read as Latin-1 (`L`): a native substring, and UTF-8
// decoding only for a string that holds a byte above 0x7f (`high` is the
// next such byte of the batch, found by one native search at a time).
// Field names repeat record after record: while a record's fields start as
// the previous record's did (same names, text values), one native
// comparison reads a field's name and tag.
function decodeBatchInline(b, view) {
  const size = b.length;
  let p = 0;
  const fail = (what) => {
    throw new MalformedBatch(`${what} at byte ${p}`);
  };
  if (size < 5 || b[0] !== 1) throw new MalformedBatch(`batch encoding version ${b[0]} is not 1`);
  const L = latin1Of(b);
  let high = -1;
  // The text of bytes [from, to), already bounds-checked.
  const text = (from, to) => {
    const s = L.substring(from, to);
    if (high < from) {
      HIGH.lastIndex = from;
      high = HIGH.test(L) ? HIGH.lastIndex - 1 : size;
    }
    if (high >= to) return s;
    try {
      return decodeURIComponent(escape(s));
    } catch {
      throw new MalformedBatch(`invalid UTF-8 in the string at byte ${from}`);
    }
  };
  const str = () => {
    if (p + 4 > size) fail("truncated string length");
    const n = view.getUint32(p, true);
    p += 4;
    if (p + n > size) fail("truncated string");
    const s = n === 0 ? "" : text(p, p + n);
    p += n;
    return s;
  };
  const i64 = () => {
    if (p + 8 > size) fail("truncated integer");
    const lo = view.getUint32(p, true);
    const hi = view.getInt32(p + 4, true);
    let v;
    if (hi >= -0x200000 && hi < 0x200000) v = hi * 4294967296 + lo;
    else v = view.getBigInt64(p, true);
    p += 8;
    return v;
  };
  let isFloat = false;
  const value = () => {
    if (p >= size) fail("truncated value");
    const tag = b[p++];
    isFloat = false;
    switch (tag) {
      case 4:
        return str();
      case 2:
        return i64();
      case 0:
        return null;
      case 3: {
        if (p + 8 > size) fail("truncated float");
        const f = view.getFloat64(p, true);
        p += 8;
        isFloat = true;
        return f;
      }
      case 1:
        if (p >= size) fail("truncated boolean");
        return b[p++] !== 0;
      case 5: {
        if (p + 4 > size) fail("truncated bytes length");
        const n = view.getUint32(p, true);
        p += 4;
        if (p + n > size) fail("truncated bytes");
        const v = b.slice(p, p + n);
        p += n;
        return v;
      }
      case 6:
        return new Timestamp(i64());
      case 7:
        return new Json(str());
      default:
        p--;
        return fail(`unknown value tag ${tag}`);
    }
  };
  const count = view.getUint32(1, true);
  p = 5;
  const out = new Array(count);
  // The previous record's leading text fields: the Latin-1 form of each
  // one's `len name tag` bytes, and its name.
  const shapeBytes = [];
  const shapeNames = [];
  for (let i = 0; i < count; i++) {
    if (p + 4 > size) fail("truncated record length");
    const end = p + 4 + view.getUint32(p, true);
    p += 4;
    const r = Object.create(Record.prototype);
    const op = b[p++];
    if (op >= 4) fail(`unknown operation code ${op}`);
    r._op = OPERATIONS[op];
    r._stream = str();
    r.position = str();
    r.eventTime = b[p++] ? i64() : null;
    r._key = value();
    r._floats = null;
    if (p + 4 > size) fail("truncated header count");
    const hn = view.getUint32(p, true);
    p += 4;
    const headers = [];
    for (let k = 0; k < hn; k++) {
      const name = str();
      if (p + 4 > size) fail("truncated header");
      const n = view.getUint32(p, true);
      p += 4;
      if (p + n > size) fail("truncated header");
      headers.push([name, b.slice(p, p + n)]);
      p += n;
    }
    r._headers = headers;
    if (p + 4 > size) fail("truncated field count");
    const fn = view.getUint32(p, true);
    p += 4;
    const fields = new Map();
    let k = 0;
    if (shapeBytes.length <= fn) {
      for (; k < shapeBytes.length; k++) {
        const prefix = shapeBytes[k];
        if (!L.startsWith(prefix, p)) break;
        const at = p + prefix.length;
        if (at + 4 > size) fail("truncated string length");
        p = at + 4;
        const to = p + view.getUint32(at, true);
        if (to > size) fail("truncated string");
        // `text(p, to)`, inline: a call costs more than the rest here.
        let v = L.substring(p, to);
        if (high < to) {
          if (high < p) {
            HIGH.lastIndex = p;
            high = HIGH.test(L) ? HIGH.lastIndex - 1 : size;
          }
          if (high < to) v = text(p, to);
        }
        fields.set(shapeNames[k], v);
        p = to;
      }
    }
    for (; k < fn; k++) {
      const start = p;
      const name = str();
      if (p < size && b[p] === 4) {
        if (k < shapeBytes.length) {
          shapeBytes[k] = L.substring(start, p + 1);
          shapeNames[k] = name;
        } else if (k === shapeBytes.length) {
          shapeBytes.push(L.substring(start, p + 1));
          shapeNames.push(name);
        }
      } else if (k < shapeBytes.length) {
        shapeBytes.length = k;
        shapeNames.length = k;
      }
      fields.set(name, value());
      if (isFloat) (r._floats ??= new Set()).add(name);
    }
    if (shapeBytes.length > fn) {
      shapeBytes.length = fn;
      shapeNames.length = fn;
    }
    r._fields = fields;
    if (p !== end) fail("a record's length does not match its contents");
    r._changed = false;
    out[i] = r;
  }
  if (p !== size) throw new MalformedBatch(`${size - p} bytes trail the last record`);
  return out;
}

/** Decodes a batch into records. */
export function decodeBatch(bytes) {
  return decodeBatchInline(bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

// `len:u32 record`, as a binary string (codec.js says why strings).
function encodeRecord(r) {
  if (!(r instanceof Record)) throw new TypeError(`emit takes Record objects, got ${typeof r}`);
  let s = OP_BYTES[r._op] + nameS(r._stream) + strS(r.position ?? "");
  s += r.eventTime === null || r.eventTime === undefined ? "\x00" : "\x01" + i64s(r.eventTime);
  s += valueS(r._key, null);
  s += u32s(r._headers.length);
  for (const [n, v] of r._headers) s += nameS(n) + u32s(v.length) + (v.length === 0 ? "" : atob(v.toBase64()));
  const fields = r._fields;
  s += u32s(fields.size);
  const floats = r._floats;
  const parts = [s];
  for (const [n, v] of fields) {
    parts.push(nameS(n));
    parts.push(typeof v === "string" ? "\x04" + strS(v) : valueS(v, n, floats !== null && floats.has(n)));
  }
  s = parts.join("");
  return u32s(s.length) + s;
}

const OP_BYTES = Object.fromEntries(Object.entries(OP_CODES).map(([k, v]) => [k, String.fromCharCode(v)]));

/** Encodes records as a batch (what a source connector's `poll` returns). */
export function encodeBatch(records) {
  const parts = ["\x01" + u32s(records.length)];
  for (const r of records) parts.push(encodeRecord(r));
  return bytesOf(parts.join(""));
}

/** Encodes one outcome per record. */
export function encodeOutcomes(records, outcomes) {
  outcomes = Array.from(outcomes);
  if (outcomes.length !== records.length) {
    throw new Error(`processBatch returned ${outcomes.length} outcomes for ${records.length} records`);
  }
  const parts = ["\x01" + u32s(records.length)];
  for (let i = 0; i < records.length; i++) {
    const rec = records[i];
    const oc = outcomes[i];
    if (oc === undefined || oc === null || oc === KEEP || oc === rec) {
      parts.push(rec._changed ? "\x01" + encodeRecord(rec) : "\x00");
    } else if (oc === DROP) {
      parts.push("\x03");
    } else if (oc instanceof Reject) {
      parts.push(
        "\x04" +
          strS(String(oc.code)) +
          (oc.field === null ? "\x00" : "\x01" + strS(String(oc.field))) +
          strS(String(oc.message)),
      );
    } else if (oc instanceof Emit || Array.isArray(oc)) {
      const rs = Array.isArray(oc) ? oc : oc.records;
      parts.push("\x02" + u32s(rs.length));
      for (const r of rs) parts.push(encodeRecord(r));
    } else {
      throw new TypeError(
        `process returned ${JSON.stringify(oc)}: return KEEP (or nothing), DROP, reject(...), emit(...) or an array of records`,
      );
    }
  }
  return bytesOf(parts.join(""));
}

export { MalformedBatch };
