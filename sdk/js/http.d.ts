// Types of `sluice-sdk/http.js`: outgoing HTTP through the host.

/** No response: refused by the host (`denied`), a timeout, a lost connection. */
export class HttpError extends Error {
  /** True when the host refused the request: its origin is not granted. */
  denied: boolean;
  /** True when the server did not answer in time. */
  timeout: boolean;
}

/** A response, read whole. */
export class Response {
  status: number;
  /** `[name, value]` pairs, names in lower case. */
  headers: Array<[string, string]>;
  body: Uint8Array;
  /** The first header called `name` (any case), or null. */
  header(name: string): string | null;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json(): any;
}

/** Sends a request and reads the whole response; throws an HttpError when there is none. */
export function request(
  method: string,
  url: string,
  options?: {
    headers?: { [name: string]: string } | Array<[string, string]>;
    body?: string | Uint8Array;
    timeoutMs?: number;
  },
): Response;
