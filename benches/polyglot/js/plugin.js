// The polyglot bench's cleansing plugin, in JavaScript: every field of a
// legacy CRM row read, cleansed and written back (../README.md). The rules
// live in rules.mjs, which the plain job run by Node (../plain/plain.mjs)
// runs too.

import { KEEP, reject } from "sluice-sdk";
import { FIELDS, cleanse } from "./rules.mjs";

export default class Cleanse {
  init(_config) {}

  process(r) {
    const [code, out] = cleanse(FIELDS.map((f) => r.get(f) ?? ""));
    if (code !== null) return reject(code, `${out} fails the \`${code}\` rule`, out);
    for (let i = 0; i < FIELDS.length; i++) r.set(FIELDS[i], out[i]);
    return KEEP;
  }
}
