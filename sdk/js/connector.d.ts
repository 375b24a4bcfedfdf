// Types of `sluice-sdk/connector.js`: connectors in JavaScript.
import { Record } from "./index.js";

/** Worth retrying: a rate limit, a busy server, a lost connection. */
export class Transient extends Error {
  constructor(message: string);
}
/** The connector cannot go on; the pipeline stops, positions are kept. */
export class Fatal extends Error {
  constructor(message: string);
}
/** A record the target refused (`index` in the batch): it goes to the dead-letter sink. */
export class Refusal {
  constructor(index: number, code: string, message: string);
  index: number;
  code: string;
  message: string;
}
/** The value of a secret the pipeline grants (`grants.secrets.NAME`), or null. */
export function secret(name: string): string | null;

/** What a source's `poll` returns. */
export interface Polled {
  /** The records read (possibly none); a record without a position gets `position`. */
  records?: Record[];
  /** The position just after the last record; null keeps the previous one (only with no records). */
  position?: string | null;
  /** True when there is nothing more to read, ever. */
  endOfData?: boolean;
}

/** A source connector: `plugin.js` default-exports a class with these methods. */
export interface Source {
  /** Prepares to read from just after `resume` (null: from the start). */
  open?(config: { [key: string]: unknown }, resume: string | null): void;
  /** Reads at most `maxRecords`, waiting at most `maxWaitMs` for the first. */
  poll(maxRecords: number, maxWaitMs: number): Polled;
  /** Everything up to `position` is durably written. */
  committed?(position: string): void;
}

/** A sink connector: `plugin.js` default-exports a class with these methods. */
export interface Sink {
  /** Prepares to write. */
  open?(config: { [key: string]: unknown }): void;
  /** Writes `records` (`keys[i]`: record i's idempotency key); returns the refused ones. */
  write(records: Record[], keys: string[]): Array<{ index: number; code: string; message: string }> | void;
  /** Makes what was written durable. */
  commit?(): void;
}

export function sourceExport(plugin: unknown): unknown;
export function sinkExport(plugin: unknown): unknown;
