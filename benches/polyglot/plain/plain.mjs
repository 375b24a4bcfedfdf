// The polyglot bench's job in plain JavaScript, run by Node outside Sluice:
// read the Windows-1252 export, split it into rows of fields (RFC 4180
// quoting, `;`), apply the rules of ../js/rules.mjs to every row of ten
// fields, and write one JSON line per row: `{"ok": [ten values]}` or
// `{"reject": code, "field": name}`.
//
// Usage: `node plain.mjs EXPORT.csv OUT.jsonl`; prints the rows done.

import { readFileSync, writeFileSync } from "node:fs";
import { cleanse } from "../js/rules.mjs";

/** Calls `onRow(fields)` for each row of `text`. */
function parseCsv(text, sep, onRow) {
  let i = 0;
  const n = text.length;
  while (i < n) {
    const row = [];
    for (;;) {
      let field;
      if (text[i] === '"') {
        let j = i + 1;
        field = "";
        for (;;) {
          const q = text.indexOf('"', j);
          if (q < 0) { field += text.slice(j); i = n; break; }
          field += text.slice(j, q);
          if (text[q + 1] === '"') { field += '"'; j = q + 2; continue; }
          i = q + 1;
          break;
        }
        // Anything between the closing quote and the separator is kept, as Python's csv does.
        let k = i;
        while (k < n && text[k] !== sep && text[k] !== "\r" && text[k] !== "\n") k++;
        field += text.slice(i, k);
        i = k;
      } else {
        let k = i;
        while (k < n && text[k] !== sep && text[k] !== "\r" && text[k] !== "\n") k++;
        field = text.slice(i, k);
        i = k;
      }
      row.push(field);
      if (i < n && text[i] === sep) { i++; continue; }
      break;
    }
    if (text[i] === "\r") i++;
    if (text[i] === "\n") i++;
    onRow(row);
  }
}

const [src, dst] = process.argv.slice(2);
// Windows-1252 is Latin-1 but for 0x80-0x9F. Node's TextDecoder decodes the
// label "windows-1252" as Latin-1 (0x80 stays U+0080, not €), so that range
// goes through the code page's table here.
const CP1252_80_9F = "\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178";
const text = readFileSync(src)
  .toString("latin1")
  .replace(/[\u0080-\u009f]/g, (c) => CP1252_80_9F[c.charCodeAt(0) - 0x80]);
const out = [];
let first = true;
let n = 0;
parseCsv(text, ";", (row) => {
  if (first) { first = false; return; }
  if (row.length !== 10) return;
  const [code, v] = cleanse(row);
  out.push(code === null ? JSON.stringify({ ok: v }) : JSON.stringify({ reject: code, field: v }));
  n++;
});
out.push("");
writeFileSync(dst, out.join("\n"));
console.log(n);
