"""The polyglot bench's cleansing plugin, in Python: every field of a legacy
CRM row read, cleansed and written back (../README.md). The rules live in
rules.py, which the plain-CPython job (../plain/plain.py) runs too."""

import sluice_sdk as sluice

from rules import FIELDS, cleanse


class Cleanse(sluice.Transform):
    def init(self, config):
        pass

    def process(self, r):
        code, out = cleanse([r.get(f) or "" for f in FIELDS])
        if code is not None:
            return sluice.reject(code, "%s fails the `%s` rule" % (out, code), field=out)
        for f, v in zip(FIELDS, out):
            r[f] = v
        return sluice.KEEP
