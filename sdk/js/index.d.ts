// Types of the `sluice-sdk` module, for editors (plugins are plain ES
// modules; `sluice plugin build` does not compile TypeScript).

/** A value of a field or key. */
export type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Timestamp
  | Json
  | Float
  | Date
  | object;

/** The source operations. */
export type Operation = "insert" | "update" | "delete" | "snapshot";

/** The WIT `value` variant names, as `Record.kind` returns them. */
export type Kind = "null" | "boolean" | "integer" | "float" | "text" | "bytes" | "timestamp" | "json";

export declare const OPERATIONS: readonly Operation[];

/** A JSON object or array value, kept as its text. */
export declare class Json {
  constructor(text: string);
  static of(obj: object): Json;
  readonly text: string;
  /** The parsed object or array (a fresh copy each time). */
  readonly value: unknown;
}

/** A point in time: microseconds since 1970-01-01T00:00:00Z. */
export declare class Timestamp {
  constructor(micros: number | bigint);
  static fromDate(d: Date): Timestamp;
  readonly micros: number;
  toDate(): Date;
}

/** An explicit 64-bit float (see `float`). */
export declare class Float {
  constructor(v: number);
  readonly value: number;
}

/** One record: fields by name, plus stream, operation, key and headers. */
export declare class Record {
  constructor(init?: {
    stream?: string;
    fields?: { [name: string]: Value } | Map<string, Value>;
    key?: Value;
    op?: Operation;
    headers?: Array<[string, Uint8Array | string]>;
  });
  get(name: string): Value | undefined;
  set(name: string, value: Value): void;
  setNull(name: string): void;
  has(name: string): boolean;
  remove(name: string): Value | undefined;
  rename(from: string, to: string): boolean;
  kind(name: string): Kind | undefined;
  fields(): IterableIterator<[string, Value]>;
  toObject(): { [name: string]: Value };
  readonly size: number;
  stream: string;
  op: Operation;
  key: Value;
  readonly headers: Array<[string, Uint8Array]>;
  header(name: string): Uint8Array | null;
  addHeader(name: string, value: Uint8Array | string): void;
  position: string;
  eventTime: number | null;
  /** The fields as JSON values (what `JSON.stringify` of a record writes). */
  toJSON(): { [name: string]: unknown };
  copy(): Record;
}

/** Keep the record, with any changes made to it. */
export declare const KEEP: { readonly outcome: "keep" };
/** Filter the record out on purpose (counted, not dead-lettered). */
export declare const DROP: { readonly outcome: "drop" };

export declare class Reject {
  constructor(code: string, message: string, field?: string | null);
  readonly code: string;
  readonly message: string;
  readonly field: string | null;
}

export declare class Emit {
  constructor(records: Iterable<Record>);
  readonly records: Record[];
}

/** What `process` returns for one record. */
export type Outcome = typeof KEEP | typeof DROP | Reject | Emit | Record[] | undefined | null | void;

export declare function reject(code: string, message: string, field?: string | null): Reject;
export declare function emit(...records: Record[] | [Record[]]): Emit;
export declare function float(v: number): Float;

/** Throw from `init` when the config is wrong: name the key. */
export declare class InvalidConfig extends Error {
  constructor(message: string);
}

/** What `plugin.js` exports by default: a class with these methods, or an object. */
export interface Transform {
  init?(config: { [key: string]: unknown }): void;
  process(record: Record): Outcome;
  processBatch?(records: Record[]): Outcome[];
}

export declare namespace log {
  function trace(...args: unknown[]): void;
  function debug(...args: unknown[]): void;
  function info(...args: unknown[]): void;
  function warn(...args: unknown[]): void;
  function error(...args: unknown[]): void;
}

/** Encodes records as a batch (the SDK does it for a source's `poll`). */
export declare function encodeBatch(records: Record[]): Uint8Array;
