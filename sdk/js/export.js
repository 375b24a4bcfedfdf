// The component's `transform` export, generated around the plugin by
// `sluice plugin build` (its entry imports this module). Plugin authors do
// not use it.
import { InvalidConfig, MalformedBatch, decodeBatch, encodeOutcomes } from "./index.js";
import { installConsole } from "./log.js";

function describe(e) {
  if (e instanceof Error) {
    const at = (e.stack || "").split("\n").map((l) => l.trim()).find((l) => l.startsWith("at ") && !l.includes("sluice-sdk"));
    return `${e.name}: ${e.message}${at ? ` (${at})` : ""}`;
  }
  return `thrown: ${typeof e === "string" ? e : JSON.stringify(e)}`;
}

/** Builds the WIT `transform` export for a plugin module's default export. */
export function transformExport(plugin) {
  let instance = null;
  return {
    init(config) {
      installConsole();
      let cfg;
      try {
        cfg = config ? JSON.parse(config) : {};
      } catch (e) {
        throw { tag: "invalid-config", val: `the config is not JSON: ${e.message}` };
      }
      try {
        let p;
        if (typeof plugin === "function") {
          p = new plugin();
        } else if (plugin && typeof plugin.process === "function") {
          p = plugin;
        } else {
          throw new TypeError("plugin.js must `export default` a class or an object with a `process(record)` method");
        }
        if (typeof p.init === "function") p.init(cfg);
        if (typeof p.processBatch !== "function") {
          const process = p.process.bind(p);
          p.processBatch = (records) => records.map(process);
        }
        instance = p;
      } catch (e) {
        if (e instanceof InvalidConfig) throw { tag: "invalid-config", val: e.message };
        throw { tag: "other", val: describe(e) };
      }
    },
    process(batch) {
      if (instance === null) throw { tag: "not-initialized" };
      let records;
      try {
        records = decodeBatch(batch);
      } catch (e) {
        throw { tag: e instanceof MalformedBatch ? "malformed-batch" : "other", val: describe(e) };
      }
      try {
        return encodeOutcomes(records, instance.processBatch(records));
      } catch (e) {
        throw { tag: "other", val: describe(e) };
      }
    },
  };
}
