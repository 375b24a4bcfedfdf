// Connectors in JavaScript: sources that read from an outside system and
// sinks that write to one. `plugin.js` of a connector (with a
// `connector.toml` saying `kind = "source"` or `"sink"`) default-exports a
// class:
//
//   // a source
//   export default class Items {
//     open(config, resume) { this.after = Number(resume ?? 0); }
//     poll(maxRecords, maxWaitMs) {
//       ... return { records, position: String(this.after), endOfData: false };
//     }
//     committed(position) {}             // optional
//   }
//
//   // a sink
//   export default class Bulk {
//     open(config) {}
//     write(records, keys) { ... return []; }   // or [{ index, code, message }]
//     commit() {}                              // optional
//   }
//
// Throw `Transient` for what is worth retrying (the host retries after a
// backoff), `Fatal` to stop the pipeline (positions are kept), and
// `InvalidConfig` from `open` for a wrong config.
import secrets from "sluice:plugin/secrets@0.1.0";
import { InvalidConfig, Record, decodeBatch, encodeBatch } from "./index.js";
import { installConsole } from "./log.js";

/** Worth retrying: a rate limit, a busy server, a lost connection. */
export class Transient extends Error {
  constructor(message) {
    super(message);
    this.name = "Transient";
  }
}

/** The connector cannot go on; the pipeline stops, positions are kept. */
export class Fatal extends Error {
  constructor(message) {
    super(message);
    this.name = "Fatal";
  }
}

/** A record the target refused (`index` in the batch): it goes to the dead-letter sink. */
export class Refusal {
  constructor(index, code, message) {
    this.index = index;
    this.code = String(code);
    this.message = String(message);
  }
}

/** The value of a secret the pipeline grants (`grants.secrets.NAME`), or null. */
export function secret(name) {
  return secrets.get(String(name)) ?? null;
}

function describe(e) {
  if (e instanceof Error) {
    const at = (e.stack || "").split("\n").map((l) => l.trim()).find((l) => l.startsWith("at ") && !l.includes("sluice-sdk"));
    return `${e.name}: ${e.message}${at ? ` (${at})` : ""}`;
  }
  return `thrown: ${typeof e === "string" ? e : JSON.stringify(e)}`;
}

/** The WIT `connector-error` for what a plugin threw. */
function classify(e) {
  if (e instanceof Transient) return { tag: "transient", val: e.message };
  if (e instanceof InvalidConfig) return { tag: "invalid-config", val: e.message };
  if (e instanceof Fatal) return { tag: "fatal", val: e.message };
  return { tag: "fatal", val: describe(e) };
}

function parseConfig(config) {
  let cfg;
  try {
    cfg = config ? JSON.parse(config) : {};
  } catch (e) {
    throw { tag: "invalid-config", val: `the config is not JSON: ${e.message}` };
  }
  if (cfg === null || typeof cfg !== "object" || Array.isArray(cfg)) {
    throw { tag: "invalid-config", val: "the config is not a table" };
  }
  return cfg;
}

function instantiate(plugin, method) {
  if (typeof plugin === "function") return new plugin();
  if (plugin && typeof plugin[method] === "function") return plugin;
  throw new TypeError(`plugin.js must \`export default\` a class or an object with a \`${method}\` method`);
}

/** Builds the WIT `source` export for a plugin module's default export. */
export function sourceExport(plugin) {
  let instance = null;
  return {
    open(config, resume) {
      installConsole();
      const cfg = parseConfig(config);
      try {
        const p = instantiate(plugin, "poll");
        if (typeof p.open === "function") p.open(cfg, resume ?? null);
        instance = p;
      } catch (e) {
        throw classify(e);
      }
    },
    poll(maxRecords, maxWaitMs) {
      if (instance === null) throw { tag: "fatal", val: "`poll` before a successful `open`" };
      try {
        const got = instance.poll(maxRecords, maxWaitMs) ?? {};
        const records = Array.from(got.records ?? []);
        const position = got.position === undefined || got.position === null ? null : String(got.position);
        for (const r of records) {
          if (!(r instanceof Record)) throw new TypeError(`poll returned a ${typeof r} among its records: give Record objects`);
          if (!r.position && position !== null) r.position = position;
        }
        return {
          batch: records.length === 0 ? new Uint8Array(0) : encodeBatch(records),
          position,
          endOfData: Boolean(got.endOfData),
        };
      } catch (e) {
        throw classify(e);
      }
    },
    committed(position) {
      if (instance === null || typeof instance.committed !== "function") return;
      try {
        instance.committed(position);
      } catch (e) {
        console.warn(`committed(${JSON.stringify(position)}) failed: ${describe(e)}`);
      }
    },
  };
}

/** Builds the WIT `sink` export for a plugin module's default export. */
export function sinkExport(plugin) {
  let instance = null;
  return {
    open(config) {
      installConsole();
      const cfg = parseConfig(config);
      try {
        const p = instantiate(plugin, "write");
        if (typeof p.open === "function") p.open(cfg);
        instance = p;
      } catch (e) {
        throw classify(e);
      }
    },
    write(batch, keys) {
      if (instance === null) throw { tag: "fatal", val: "`write` before a successful `open`" };
      let records;
      try {
        records = decodeBatch(batch);
      } catch (e) {
        throw { tag: "fatal", val: `malformed batch: ${describe(e)}` };
      }
      try {
        const refused = Array.from(instance.write(records, keys) ?? []);
        return refused.map((r) => {
          const index = Number(r.index);
          if (!Number.isInteger(index) || index < 0 || index >= records.length) {
            throw new RangeError(`a refusal names record ${r.index}; the batch has ${records.length}`);
          }
          return { index, code: String(r.code), message: String(r.message) };
        });
      } catch (e) {
        throw classify(e);
      }
    },
    commit() {
      if (instance === null) throw { tag: "fatal", val: "`commit` before a successful `open`" };
      if (typeof instance.commit !== "function") return;
      try {
        instance.commit();
      } catch (e) {
        throw classify(e);
      }
    },
  };
}
