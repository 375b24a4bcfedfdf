"""The polyglot bench's job in plain CPython, outside Sluice: read the
Windows-1252 export with the csv module, apply the rules of
../python/rules.py to every row of ten fields, and write one JSON line per
row: ``{"ok": [ten values]}`` or ``{"reject": code, "field": name}``.

Usage: ``python3 plain.py EXPORT.csv OUT.jsonl``; prints the rows done.
"""

import csv
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from rules import cleanse  # noqa: E402


def main(src, dst):
    n = 0
    dumps = json.dumps
    with open(src, encoding="cp1252", newline="") as f, open(dst, "w", encoding="utf-8") as out:
        rows = csv.reader(f, delimiter=";")
        next(rows)
        for row in rows:
            if len(row) != 10:
                continue
            code, v = cleanse(row)
            if code is None:
                out.write(dumps({"ok": v}, ensure_ascii=False))
            else:
                out.write(dumps({"reject": code, "field": v}))
            out.write("\n")
            n += 1
    print(n)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
