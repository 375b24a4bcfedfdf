// Outgoing HTTP for connectors, through the host.
//
// The host sends each request over its own HTTP/TLS stack, only to an
// origin the pipeline grants (`grants.http`), and may add the operator's
// credential header (`grants.auth`), which the connector never sees:
//
//   import * as http from "sluice-sdk/http.js";
//   const resp = http.request("GET", "http://127.0.0.1:8080/customers?limit=10");
//   resp.status, resp.header("content-type"), resp.json()
import client from "sluice:plugin/http-client@0.1.0";
import { Writer, utf8Decode } from "./codec.js";

/** No response: refused by the host (`denied`), a timeout, a lost connection. */
export class HttpError extends Error {
  constructor(message, { denied = false, timeout = false } = {}) {
    super(message);
    this.name = "HttpError";
    /** True when the host refused the request: its origin is not granted. */
    this.denied = denied;
    /** True when the server did not answer in time. */
    this.timeout = timeout;
  }
}

/** A response, read whole: `status`, `headers` (`[name, value]`, lower-case names), `body` (a Uint8Array). */
export class Response {
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }
  /** The first header called `name` (any case), or null. */
  header(name) {
    const n = String(name).toLowerCase();
    const h = this.headers.find(([k]) => k === n);
    return h ? h[1] : null;
  }
  /** The body as text (UTF-8). */
  text() {
    return utf8Decode(this.body, 0, this.body.length);
  }
  /** The body parsed as JSON. */
  json() {
    return JSON.parse(this.text());
  }
}

function encodeText(s) {
  const w = new Writer(s.length + 16);
  w.str(s);
  return w.buf.slice(4, w.len);
}

/**
 * Sends a request and reads the whole response.
 * `options.headers`: an object or `[name, value]` pairs; `options.body`: a
 * string or Uint8Array; `options.timeoutMs` bounds connecting, the first
 * byte and the gaps between bytes (the host's `request_timeout_ms` caps it).
 * Throws an HttpError when there is no response.
 */
export function request(method, url, options = {}) {
  let body = new Uint8Array(0);
  if (options.body !== undefined && options.body !== null) {
    body = options.body instanceof Uint8Array ? options.body : encodeText(String(options.body));
  }
  const given = options.headers ?? {};
  const headers = (Array.isArray(given) ? given : Object.entries(given)).map(([k, v]) => [String(k), String(v)]);
  const timeoutMs = options.timeoutMs === undefined ? null : Math.max(0, Math.round(Number(options.timeoutMs)));
  let resp;
  try {
    resp = client.send({ method: String(method).toUpperCase(), url: String(url), headers, body, timeoutMs });
  } catch (e) {
    const tag = e && typeof e === "object" ? e.tag : undefined;
    const message = e && typeof e === "object" && "val" in e ? String(e.val) : `${url}: ${String(e)}`;
    throw new HttpError(message, { denied: tag === "denied", timeout: tag === "timeout" });
  }
  const bytes = resp.body instanceof Uint8Array ? resp.body : Uint8Array.from(resp.body);
  return new Response(resp.status, resp.headers, bytes);
}
