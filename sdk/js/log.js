// Log lines into the Sluice host's log, tagged with the plugin's name and
// version. `console.log` and friends are routed here too by the SDK.
import wit from "sluice:plugin/log@0.1.0";

function line(args) {
  return args.map((a) => (typeof a === "string" ? a : safeJson(a))).join(" ");
}
function safeJson(a) {
  try {
    return a instanceof Error ? `${a.name}: ${a.message}` : JSON.stringify(a);
  } catch {
    return String(a);
  }
}

/** Very detailed diagnostics. */
export const trace = (...a) => wit.log("trace", line(a));
/** Diagnostics for plugin authors. */
export const debug = (...a) => wit.log("debug", line(a));
/** Normal operation. */
export const info = (...a) => wit.log("info", line(a));
/** Something looks wrong but processing continues. */
export const warn = (...a) => wit.log("warn", line(a));
/** Something failed. */
export const error = (...a) => wit.log("error", line(a));

/** Routes `console.*` to the Sluice log (done by the SDK). */
export function installConsole() {
  globalThis.console = { log: info, info, debug, trace, warn, error };
}
