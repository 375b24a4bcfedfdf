// `customer-cleanse`: the example cleansing plugin, in JavaScript. The same
// rules are written in Rust, Python and C next to this one; a test feeds all
// four the same records and asserts identical outcomes (see ../README.md).

import { DROP, InvalidConfig, KEEP, reject } from "sluice-sdk";

const KEYS = new Set(["default_country", "drop_test_accounts", "min_age", "tag"]);
const SPACE = /[ \t\r\n]/;
const ASCII = /^[\x00-\x7f]*$/;
const trim = (s) => s.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
// ASCII letters only, as in the other languages (toLowerCase would also
// change other letters): the native call when the text is all ASCII.
const asciiLower = (s) => (ASCII.test(s) ? s.toLowerCase() : s.replace(/[A-Z]+/g, (m) => m.toLowerCase()));
const asciiUpper = (s) => (ASCII.test(s) ? s.toUpperCase() : s.replace(/[a-z]+/g, (m) => m.toUpperCase()));

/** Trims ASCII whitespace and collapses inner runs into one space. */
function squeeze(s) {
  return s.split(/[ \t\r\n]/).filter((w) => w.length > 0).join(" ");
}

function validEmail(e) {
  const parts = e.split("@");
  if (parts.length !== 2) return false;
  const [local, domain] = parts;
  return (
    local.length > 0 &&
    !SPACE.test(e) &&
    domain.includes(".") &&
    !domain.startsWith(".") &&
    !domain.endsWith(".")
  );
}

export default class CustomerCleanse {
  init(config) {
    for (const key of Object.keys(config)) {
      if (!KEYS.has(key)) throw new InvalidConfig(`unknown field \`${key}\``);
    }
    this.defaultCountry = config.default_country ?? "US";
    if (typeof this.defaultCountry !== "string") throw new InvalidConfig("`default_country`: expected a string");
    this.dropTestAccounts = config.drop_test_accounts ?? true;
    if (typeof this.dropTestAccounts !== "boolean") throw new InvalidConfig("`drop_test_accounts`: expected a boolean");
    this.minAge = config.min_age ?? 18;
    if (!Number.isInteger(this.minAge) || this.minAge < 0) throw new InvalidConfig("`min_age`: expected a whole number of years");
    this.tag = config.tag ?? null;
    if (this.tag !== null && typeof this.tag !== "string") throw new InvalidConfig("`tag`: expected a string");
  }

  process(r) {
    if (r.op === "delete") return KEEP;
    const rawName = r.get("name");
    const name = typeof rawName === "string" ? squeeze(rawName) : "";
    if (name === "") return reject("required", "name is required", "name");
    let email = r.get("email");
    if (typeof email !== "string") return reject("required", "email is required", "email");
    email = asciiLower(trim(email));
    if (!validEmail(email)) return reject("invalid_email", `\`${email}\` is not an email address`, "email");
    if (this.dropTestAccounts && email.endsWith("@example.com")) return DROP;
    let age = r.get("age");
    const kind = r.kind("age");
    if (kind === "text") {
      const t = trim(age);
      if (t.length > 0 && t.length <= 3 && /^[0-9]+$/.test(t)) {
        age = Number(t);
      } else {
        return reject("invalid_age", "age must be a whole number of years", "age");
      }
    } else if (kind !== undefined && kind !== "null" && kind !== "integer") {
      return reject("invalid_age", "age must be a whole number of years", "age");
    }
    if (age !== undefined && age !== null) {
      if (age < this.minAge) return reject("underage", `age ${age} is below the minimum of ${this.minAge}`, "age");
      r.set("age", age);
    }
    r.set("name", name);
    r.set("email", email);
    const country = r.get("country");
    const c = typeof country === "string" ? asciiUpper(trim(country)) : "";
    r.set("country", c !== "" ? c : this.defaultCountry);
    const phone = r.get("phone");
    if (typeof phone === "string") {
      const digits = phone.replace(/[^0-9]/g, "");
      r.set("phone", digits.length >= 7 ? digits : null);
    }
    if (this.tag !== null) r.set("tag", this.tag);
    return KEEP;
  }
}
