"""The end-to-end benchmark's jobs written as a polars script.

What a migration team fluent in polars would write instead of Sluice:
vectorised expressions over the whole export, no Python loop per row. It
does what `benches/reference/src/main.rs` does, rule for rule, and the
benchmark checks that it writes the same rows and rejects the same records
for the same reasons:

- `demo`: drop inactive customers, rename, cast, trim, collapse spaces, null
  spellings, case, four date formats, European money, then required / min /
  email check / allowed countries / max length, into a SQLite upsert;
- `pattern`: rename, cast, trim, null spellings, case, three date formats,
  money, then required fields and a regex on the email, deduplicated by the
  upsert;
- `copy`: every column as text, upserted by `CUST_NO`.

Rows with the wrong number of fields are rejected as `malformed`. Rejected
records go to `--rejects` as JSON lines (code, line). It prints
`written N dropped N rejected code=N,...`.

    python polars_job.py --job demo --input customers.csv --db out.db --rejects rejects.jsonl
"""

import argparse
import io
import sqlite3
import sys

import polars as pl

NAMES = [
    "CUST_NO",
    "FIRST_NAME",
    "LAST_NAME",
    "E_MAIL",
    "PHONE",
    "SIGNUP_DT",
    "BALANCE",
    "COUNTRY",
    "STATUS",
    "NOTES",
]
COLUMNS = [
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "signup_date",
    "balance_cents",
    "country",
    "status",
    "notes",
    "migrated_from",
]
COUNTRIES = ["FR", "DE", "ES", "IT", "GB", "NL", "BE", "PT"]
NULLS = ["", "null", "n/a", "-"]
EMAIL_PATTERN = r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# The dot-atom address the `email` rule accepts (lengths checked apart).
IS_EMAIL = (
    rf"^{ATOM}(\.{ATOM})*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{{2,}}$"
)
I64_MAX = 2**63 - 1


def title_case_fixes():
    """polars' `to_titlecase` starts a word after any character that is not
    a letter; the rule here starts one only after a space or `-`. The pairs
    that undo the difference for every character a Windows-1252 export can
    hold: (that character, a capital) -> (that character, the small letter).
    """
    chars = [
        bytes([b]).decode("cp1252")
        for b in range(32, 256)
        if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
    ]
    after = [c for c in chars if not c.isalpha() and not c.isspace() and c != "-"]
    capitals = [c for c in chars if c.isupper() and len(c.lower()) == 1]
    pats, reps = [], []
    for p in after:
        for u in capitals:
            pats.append(p + u)
            reps.append(p + u.lower())
    return pats, reps


def read(path):
    """The export's rows as text columns, with their line numbers; the rows
    with the wrong number of fields apart."""
    with open(path, "rb") as f:
        text = f.read().decode("cp1252").replace("\r\n", "\n")
    body = text.split("\n", 1)[1].encode()
    lines = pl.read_csv(
        io.BytesIO(body),
        has_header=False,
        separator="\x1f",
        quote_char=None,
        new_columns=["raw"],
        schema={"raw": pl.String},
        empty_string_is_null=False,
    ).with_row_index("line", offset=2)
    # Fields outside quotes: one `;` fewer than columns.
    fields = (
        pl.col("raw").str.replace_all(r'"[^"]*"', "").str.count_matches(";") + 1
    )
    lines = lines.with_columns(ok=fields == len(NAMES))
    good = lines.filter(pl.col("ok"))
    bad = lines.filter(~pl.col("ok")).select("line")
    rows = pl.read_csv(
        io.BytesIO("\n".join(good["raw"].to_list()).encode()),
        has_header=False,
        separator=";",
        new_columns=NAMES,
        schema={n: pl.String for n in NAMES},
        empty_string_is_null=False,
    ).with_columns(line=good["line"])
    return rows, bad


def clean(name, collapse):
    """Trimmed, spaces collapsed (demo), null for a null spelling."""
    c = pl.col(name).str.strip_chars()
    if collapse:
        c = c.str.replace_all(r"\s+", " ")
    return pl.when(c.str.to_lowercase().is_in(NULLS)).then(None).otherwise(c)


def money(lf, raw, out):
    """Column `out`: the European money (`1.234,56 €`, `(12,00)`, `EUR 3,50`,
    `-7,10 €`) of column `raw` in cents, null when it is not money. In
    steps, each computed once."""
    t = pl.col(raw).str.strip_chars()
    lf = lf.with_columns(
        _paren=t.str.starts_with("(") & t.str.ends_with(")"), _t=t
    ).with_columns(
        _t=pl.when("_paren")
        .then(pl.col("_t").str.slice(1, pl.col("_t").str.len_chars() - 2))
        .otherwise("_t")
    ).with_columns(
        _minus=pl.col("_t").str.count_matches("[-\u2212]"),
        _rest=pl.col("_t").str.replace_all(
            r"[\s\p{Alphabetic}$€£¥₹¢₩₽₺+\-\u2212]", ""
        ),
    ).with_columns(
        _shape=pl.col("_rest").str.contains(r"^[0-9.'_]*(,[0-9]{0,2})?$")
        & pl.col("_rest").str.contains("[0-9]"),
        _units=pl.col("_rest")
        .str.extract(r"^([^,]*)", 1)
        .str.replace_all(r"[.'_]", "")
        .str.strip_chars_start("0"),
        _frac=pl.col("_rest").str.extract(r",([0-9]*)$", 1).fill_null(""),
    ).with_columns(
        _cents=pl.when(pl.col("_frac").str.len_chars() == 0)
        .then(0)
        .when(pl.col("_frac").str.len_chars() == 1)
        .then(pl.col("_frac").cast(pl.Int64, strict=False) * 10)
        .otherwise(pl.col("_frac").cast(pl.Int64, strict=False)),
        _u=pl.when(pl.col("_units") == "")
        .then(0)
        .otherwise(pl.col("_units").cast(pl.Int64, strict=False)),
    )
    fits = (pl.col("_units").str.len_chars() <= 17) & (
        pl.col("_u") <= (pl.lit(I64_MAX) - pl.col("_cents")) // 100
    )
    value = pl.col("_u") * 100 + pl.col("_cents")
    paren, minus = pl.col("_paren"), pl.col("_minus")
    ok = (
        pl.col("_shape")
        & fits
        & ((paren & (minus == 0)) | (~paren & (minus <= 1)))
    )
    negative = paren | (minus == 1)
    lf = lf.with_columns(
        pl.when(ok).then(pl.when(negative).then(-value).otherwise(value)).alias(out)
    )
    return lf.drop("_paren", "_t", "_minus", "_rest", "_shape", "_units", "_frac", "_cents", "_u")


def migrate(rows, job):
    demo = job == "demo"
    formats = ["%d/%m/%Y", "%Y-%m-%d", "%d.%m.%Y"] + (["%b %d %Y"] if demo else [])
    pats, reps = title_case_fixes()

    def title(name):
        return (
            clean(name, demo)
            .str.to_titlecase()
            .str.replace_many(pats, reps)
        )

    # Lazy, so that polars computes each sub-expression once (the money
    # rule reuses its pieces).
    df = rows.lazy().with_columns(
        dropped=(
            pl.col("STATUS").str.to_lowercase() == "inactive"
            if demo
            else pl.lit(False)
        ),
        customer_id=pl.col("CUST_NO").str.strip_chars().cast(pl.Int64, strict=False),
        first_name=title("FIRST_NAME"),
        last_name=title("LAST_NAME"),
        email=clean("E_MAIL", demo).str.to_lowercase(),
        phone=clean("PHONE", demo),
        signup_raw=clean("SIGNUP_DT", demo),
        balance_raw=clean("BALANCE", demo),
        country=clean("COUNTRY", demo).str.to_uppercase(),
        status=clean("STATUS", demo).str.to_lowercase(),
        notes=clean("NOTES", demo),
    ).with_columns(
        signup_date=pl.coalesce(
            [pl.col("signup_raw").str.to_date(f, strict=False) for f in formats]
        ).dt.to_string("%Y-%m-%d"),
    )
    df = money(df, "balance_raw", "balance_cents")
    code = pl.when(pl.col("customer_id").is_null()).then(pl.lit("cast_failed"))
    code = code.when(
        pl.col("signup_raw").is_not_null() & pl.col("signup_date").is_null()
    ).then(pl.lit("invalid_date"))
    code = code.when(
        pl.col("balance_raw").is_not_null() & pl.col("balance_cents").is_null()
    ).then(pl.lit("invalid_money"))
    if demo:
        local = pl.col("email").str.extract(r"^([^@]*)@", 1)
        domain = pl.col("email").str.extract(r"@(.*)$", 1)
        email_ok = (
            pl.col("email").str.contains(IS_EMAIL)
            & (local.str.len_bytes() <= 64)
            & (domain.str.len_bytes() <= 253)
            & ~domain.str.contains(r"(^|\.)[^.]{64,}(\.|$)")
        )
        code = (
            code.when(pl.col("country").is_null())
            .then(pl.lit("required"))
            .when(~pl.col("country").is_in(COUNTRIES))
            .then(pl.lit("not_allowed"))
            .when(pl.col("customer_id") < 1)
            .then(pl.lit("out_of_range"))
            .when(pl.col("email").is_null())
            .then(pl.lit("required"))
            .when(~email_ok)
            .then(pl.lit("invalid_email"))
            .when(pl.col("last_name").is_null())
            .then(pl.lit("required"))
            .when(pl.col("last_name").str.len_chars() > 60)
            .then(pl.lit("too_long"))
        )
    else:
        code = (
            code.when(pl.col("email").is_null())
            .then(pl.lit("required"))
            .when(~pl.col("email").str.contains(EMAIL_PATTERN))
            .then(pl.lit("pattern_mismatch"))
            .when(pl.col("last_name").is_null())
            .then(pl.lit("required"))
        )
    df = df.with_columns(code=pl.when(pl.col("dropped")).then(None).otherwise(code))
    if demo:
        df = df.with_columns(migrated_from=pl.lit("legacy-crm"))
    return df.collect()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--job", choices=["demo", "pattern", "copy"], required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--rejects", required=True)
    a = ap.parse_args()

    rows, bad = read(a.input)
    rejects = [bad.select(code=pl.lit("malformed"), line="line")]
    if a.job == "copy":
        columns, key, types = NAMES, "CUST_NO", {n: "TEXT" for n in NAMES}
        out = rows.select(NAMES)
        dropped = 0
    else:
        columns = COLUMNS if a.job == "demo" else COLUMNS[:10]
        key = "customer_id"
        types = {c: "TEXT" for c in columns}
        types.update(customer_id="INTEGER", balance_cents="INTEGER", notes="")
        df = migrate(rows, a.job)
        dropped = int(df["dropped"].sum())
        rejected = df.filter(pl.col("code").is_not_null())
        rejects.append(rejected.select("code", "line"))
        out = df.filter(~pl.col("dropped") & pl.col("code").is_null()).select(columns)
    written = out.height
    # An upsert by key keeps the last row of a key.
    out = out.unique(subset=key, keep="last", maintain_order=True)

    db = sqlite3.connect(a.db)
    db.executescript("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
    defs = ", ".join(f'"{c}" {types[c]}'.rstrip() for c in columns)
    db.executescript(
        f'DROP TABLE IF EXISTS customers; CREATE TABLE customers ({defs}, PRIMARY KEY ("{key}"));'
    )
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    with db:
        db.executemany(
            f"INSERT INTO customers ({names}) VALUES ({marks})", out.iter_rows()
        )
    db.close()

    rejects = pl.concat(rejects)
    rejects.write_ndjson(a.rejects)
    counts = rejects.group_by("code").len().sort("code")
    print(
        f"written {written} dropped {dropped} rejected "
        + ",".join(f"{c}={n}" for c, n in counts.iter_rows())
    )


if __name__ == "__main__":
    sys.exit(main())
