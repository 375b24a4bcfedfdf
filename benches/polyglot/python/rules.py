"""The cleansing rules of the polyglot bench (../README.md), shared by the
plugin (plugin.py) and the plain-CPython job (../plain/plain.py).

``cleanse(fields)`` takes the ten text fields of one export row in order and
returns either ``(None, values)``, the ten cleansed values in order, or
``(code, field)``, the first rule the row fails.
"""

import re

_WS = " \t\r\n"
_NULLS = frozenset(("", "NULL", "null", "N/A", "-"))
_SPACES = re.compile(r"[ \t\r\n]+")
_WORD_START = re.compile(r"(^|[ \-'])([^ \-'])")
_ID = re.compile(r"[0-9]{1,15}")
_EMAIL = re.compile(r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_COUNTRY = re.compile(r"[A-Z]{2}")
_MONEY = re.compile(r"([0-9]{1,3}(?:\.[0-9]{3})*),([0-9]{2})")
_DATE_DMY = re.compile(r"([0-9]{2})([/.])([0-9]{2})\2([0-9]{4})")
_DATE_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATE_MON = re.compile(r"([A-Z][a-z]{2}) ([0-9]{2}) ([0-9]{4})")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))}
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NOT_DIGIT = re.compile(r"[^0-9]+")

FIELDS = ("CUST_NO", "FIRST_NAME", "LAST_NAME", "E_MAIL", "PHONE",
          "SIGNUP_DT", "BALANCE", "COUNTRY", "STATUS", "NOTES")


def _upper_first(m):
    return m.group(1) + m.group(2).upper()


def name(v):
    """Trimmed, inner whitespace collapsed, title case; None for a null token."""
    v = _SPACES.sub(" ", v.strip(_WS))
    if v in _NULLS:
        return None
    return _WORD_START.sub(_upper_first, v.lower())


def text(v):
    """Trimmed and collapsed; None for a null token."""
    v = _SPACES.sub(" ", v.strip(_WS))
    return None if v in _NULLS else v


def date(v):
    """``YYYY-MM-DD`` from four spellings; False when it is not a date."""
    m = _DATE_DMY.fullmatch(v)
    if m:
        y, mo, d = int(m.group(4)), int(m.group(3)), int(m.group(1))
    else:
        m = _DATE_ISO.fullmatch(v)
        if m:
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        else:
            m = _DATE_MON.fullmatch(v)
            if not m or m.group(1) not in _MONTHS:
                return False
            y, mo, d = int(m.group(3)), _MONTHS[m.group(1)], int(m.group(2))
    if mo < 1 or mo > 12 or d < 1:
        return False
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if d > (29 if mo == 2 and leap else _DAYS[mo - 1]):
        return False
    return "%04d-%02d-%02d" % (y, mo, d)


def money(v):
    """Whole cents from ``1.234,56``, ``EUR 1.234,56``, ``1.234,56 €``,
    ``-1.234,56 €`` or ``(1.234,56)``; None when it is not an amount."""
    negative = False
    if v.startswith("(") and v.endswith(")"):
        negative, v = True, v[1:-1]
    elif v.startswith("-"):
        negative, v = True, v[1:]
    if v.startswith("EUR "):
        v = v[4:]
    elif v.endswith(" \u20ac"):
        v = v[:-2]
    m = _MONEY.fullmatch(v)
    if not m:
        return None
    cents = int(m.group(1).replace(".", "")) * 100 + int(m.group(2))
    return -cents if negative else cents


def cleanse(f):
    """The rules, field by field in order; see the module doc."""
    cust = f[0].strip(_WS)
    if cust in _NULLS:
        return "required", "CUST_NO"
    if not _ID.fullmatch(cust):
        return "invalid_id", "CUST_NO"
    first = name(f[1])
    last = name(f[2])
    if last is None:
        return "required", "LAST_NAME"
    email = f[3].strip(_WS).lower()
    if email in _NULLS:
        return "required", "E_MAIL"
    if not _EMAIL.fullmatch(email):
        return "invalid_email", "E_MAIL"
    phone = _NOT_DIGIT.sub("", f[4])
    if len(phone) < 7:
        phone = None
    signup = f[5].strip(_WS)
    if signup in _NULLS:
        signup = None
    else:
        signup = date(signup)
        if signup is False:
            return "invalid_date", "SIGNUP_DT"
    balance = f[6].strip(_WS)
    if balance in _NULLS:
        balance = None
    else:
        balance = money(balance)
        if balance is None:
            return "invalid_money", "BALANCE"
    country = f[7].strip(_WS).upper()
    if country in _NULLS:
        country = None
    elif not _COUNTRY.fullmatch(country):
        return "invalid_country", "COUNTRY"
    status = f[8].strip(_WS).lower()
    if status in _NULLS:
        status = None
    notes = text(f[9])
    return None, (int(cust), first, last, email, phone, signup, balance, country, status, notes)
