"""`customer-cleanse`: the example cleansing plugin, in Python. The same rules
are written in Rust, JavaScript and C next to this one; a test feeds all four
the same records and asserts identical outcomes (see ../README.md)."""

import sluice_sdk as sluice

_SPACE = " \t\r\n"
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_KEYS = {"default_country", "drop_test_accounts", "min_age", "tag"}


def squeeze(s):
    """Trims ASCII whitespace and collapses inner runs into one space."""
    for c in "\t\r\n":
        s = s.replace(c, " ")
    return " ".join(w for w in s.split(" ") if w)


def valid_email(e):
    parts = e.split("@")
    if len(parts) != 2:
        return False
    local, domain = parts
    return (
        bool(local)
        and not any(c in e for c in _SPACE)
        and "." in domain
        and not domain.startswith(".")
        and not domain.endswith(".")
    )


class CustomerCleanse(sluice.Transform):
    def init(self, config):
        for key in config:
            if key not in _KEYS:
                raise sluice.InvalidConfig("unknown field `%s`" % key)
        self.default_country = config.get("default_country", "US")
        if not isinstance(self.default_country, str):
            raise sluice.InvalidConfig("`default_country`: expected a string")
        self.drop_test_accounts = config.get("drop_test_accounts", True)
        if not isinstance(self.drop_test_accounts, bool):
            raise sluice.InvalidConfig("`drop_test_accounts`: expected a boolean")
        self.min_age = config.get("min_age", 18)
        if isinstance(self.min_age, bool) or not isinstance(self.min_age, int) or self.min_age < 0:
            raise sluice.InvalidConfig("`min_age`: expected a whole number of years")
        self.tag = config.get("tag")
        if self.tag is not None and not isinstance(self.tag, str):
            raise sluice.InvalidConfig("`tag`: expected a string")

    def process(self, r):
        if r.op == "delete":
            return sluice.KEEP
        name = r.get("name")
        name = squeeze(name) if isinstance(name, str) else ""
        if not name:
            return sluice.reject("required", "name is required", field="name")
        email = r.get("email")
        if not isinstance(email, str):
            return sluice.reject("required", "email is required", field="email")
        email = email.strip(_SPACE).translate(_LOWER)
        if not valid_email(email):
            return sluice.reject(
                "invalid_email", "`%s` is not an email address" % email, field="email"
            )
        if self.drop_test_accounts and email.endswith("@example.com"):
            return sluice.DROP
        age = r.get("age")
        if isinstance(age, str):
            t = age.strip(_SPACE)
            if t and len(t) <= 3 and all(c in "0123456789" for c in t):
                age = int(t)
            else:
                return sluice.reject("invalid_age", "age must be a whole number of years", field="age")
        elif age is not None and (isinstance(age, bool) or not isinstance(age, int)):
            return sluice.reject("invalid_age", "age must be a whole number of years", field="age")
        if age is not None:
            if age < self.min_age:
                return sluice.reject(
                    "underage",
                    "age %d is below the minimum of %d" % (age, self.min_age),
                    field="age",
                )
            r["age"] = age
        r["name"] = name
        r["email"] = email
        country = r.get("country")
        country = country.strip(_SPACE).translate(_UPPER) if isinstance(country, str) else ""
        r["country"] = country or self.default_country
        phone = r.get("phone")
        if isinstance(phone, str):
            digits = "".join(c for c in phone if c in "0123456789")
            r["phone"] = digits if len(digits) >= 7 else None
        if self.tag is not None:
            r["tag"] = self.tag
        return sluice.KEEP
