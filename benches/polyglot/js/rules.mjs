// The cleansing rules of the polyglot bench (../README.md), shared by the
// plugin (plugin.js) and the plain job run by Node (../plain/plain.mjs).
//
// `cleanse(fields)` takes the ten text fields of one export row in order and
// returns `[null, values]`, the ten cleansed values in order, or
// `[code, field]`, the first rule the row fails.

const NULLS = new Set(["", "NULL", "null", "N/A", "-"]);
const SPACES = /[ \t\r\n]+/g;
const EDGES = /^[ \t\r\n]+|[ \t\r\n]+$/g;
const WORD_START = /(^|[ \-'])([^ \-'])/gu;
const ID = /^[0-9]{1,15}$/;
const EMAIL = /^[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+$/;
const COUNTRY = /^[A-Z]{2}$/;
const MONEY = /^([0-9]{1,3}(?:\.[0-9]{3})*),([0-9]{2})$/;
const DATE_DMY = /^([0-9]{2})([/.])([0-9]{2})\2([0-9]{4})$/;
const DATE_ISO = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;
const DATE_MON = /^([A-Z][a-z]{2}) ([0-9]{2}) ([0-9]{4})$/;
const MONTHS = { Jan: 1, Feb: 2, Mar: 3, Apr: 4, May: 5, Jun: 6, Jul: 7, Aug: 8, Sep: 9, Oct: 10, Nov: 11, Dec: 12 };
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const NOT_DIGIT = /[^0-9]+/g;

export const FIELDS = ["CUST_NO", "FIRST_NAME", "LAST_NAME", "E_MAIL", "PHONE", "SIGNUP_DT", "BALANCE", "COUNTRY", "STATUS", "NOTES"];

const strip = (v) => v.replace(EDGES, "");
const pad = (n, w) => String(n).padStart(w, "0");

/** Trimmed, inner whitespace collapsed, title case; null for a null token. */
export function name(v) {
  v = strip(v).replace(SPACES, " ");
  if (NULLS.has(v)) return null;
  return v.toLowerCase().replace(WORD_START, (_, sep, c) => sep + c.toUpperCase());
}

/** Trimmed and collapsed; null for a null token. */
export function text(v) {
  v = strip(v).replace(SPACES, " ");
  return NULLS.has(v) ? null : v;
}

/** `YYYY-MM-DD` from four spellings; false when it is not a date. */
export function date(v) {
  let y, mo, d, m;
  if ((m = DATE_DMY.exec(v))) {
    y = Number(m[4]); mo = Number(m[3]); d = Number(m[1]);
  } else if ((m = DATE_ISO.exec(v))) {
    y = Number(m[1]); mo = Number(m[2]); d = Number(m[3]);
  } else if ((m = DATE_MON.exec(v)) && Object.hasOwn(MONTHS, m[1])) {
    y = Number(m[3]); mo = MONTHS[m[1]]; d = Number(m[2]);
  } else {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  if (d > (mo === 2 && leap ? 29 : DAYS[mo - 1])) return false;
  return `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}`;
}

/** Whole cents from `1.234,56`, `EUR 1.234,56`, `1.234,56 €`, `-1.234,56 €`
 * or `(1.234,56)`; null when it is not an amount. */
export function money(v) {
  let negative = false;
  if (v.startsWith("(") && v.endsWith(")")) {
    negative = true; v = v.slice(1, -1);
  } else if (v.startsWith("-")) {
    negative = true; v = v.slice(1);
  }
  if (v.startsWith("EUR ")) v = v.slice(4);
  else if (v.endsWith(" \u20ac")) v = v.slice(0, -2);
  const m = MONEY.exec(v);
  if (!m) return null;
  const cents = Number(m[1].replaceAll(".", "")) * 100 + Number(m[2]);
  return negative ? -cents : cents;
}

/** The rules, field by field in order; see the module comment. */
export function cleanse(f) {
  const cust = strip(f[0]);
  if (NULLS.has(cust)) return ["required", "CUST_NO"];
  if (!ID.test(cust)) return ["invalid_id", "CUST_NO"];
  const first = name(f[1]);
  const last = name(f[2]);
  if (last === null) return ["required", "LAST_NAME"];
  const email = strip(f[3]).toLowerCase();
  if (NULLS.has(email)) return ["required", "E_MAIL"];
  if (!EMAIL.test(email)) return ["invalid_email", "E_MAIL"];
  let phone = f[4].replace(NOT_DIGIT, "");
  if (phone.length < 7) phone = null;
  let signup = strip(f[5]);
  if (NULLS.has(signup)) {
    signup = null;
  } else {
    signup = date(signup);
    if (signup === false) return ["invalid_date", "SIGNUP_DT"];
  }
  let balance = strip(f[6]);
  if (NULLS.has(balance)) {
    balance = null;
  } else {
    balance = money(balance);
    if (balance === null) return ["invalid_money", "BALANCE"];
  }
  let country = strip(f[7]).toUpperCase();
  if (NULLS.has(country)) country = null;
  else if (!COUNTRY.test(country)) return ["invalid_country", "COUNTRY"];
  let status = strip(f[8]).toLowerCase();
  if (NULLS.has(status)) status = null;
  const notes = text(f[9]);
  return [null, [Number(cust), first, last, email, phone, signup, balance, country, status, notes]];
}
