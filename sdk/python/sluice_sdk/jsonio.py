"""Records as a JSON document, written by the host (the ``json`` import).

A sink that posts JSON spends most of its time decoding the batch into
records and building the body, and CPython inside the sandbox is slow at
both. :func:`encode` hands the batch ``write`` received to the host, which
writes the document natively without the records ever being decoded in
Python::

    from sluice_sdk import jsonio

    def write(self, records, keys):
        body = jsonio.encode(records, keys, envelope="records", key_member="key", fields_member="record")
        # b'{"records":[{"key":"...","record":{"id":1,...}},...]}'

Values are written as in Sluice's JSON lines: bytes as base64 text,
timestamps as RFC 3339 text (UTC), :class:`sluice_sdk.Json` values inline,
floats that are not finite as ``null``. Outside a component (a plugin's
unit tests), or for records that were changed or built in Python, the same
document is written in Python.
"""

import base64 as _base64
import json as _json
import math as _math
from datetime import datetime as _datetime, timezone as _timezone

from . import _codec
from ._record import Json

try:
    from componentize_py_types import Err
    from wit_world.imports import json as _host
except ImportError:  # outside a component (unit tests of plugin logic)
    _host = None


class JsonError(Exception):
    """The host could not write the document (a wrong number of keys, a
    document larger than the connector's memory cap)."""


def encode(records, keys=(), envelope=None, key_member=None, fields_member=None):
    """The records as one JSON document (``bytes``): an array with one object
    per record, inside ``{envelope: [...]}`` when ``envelope`` is given. With
    ``key_member``, each object holds ``keys[i]`` under that name; with
    ``fields_member``, the record's fields go in an object under that name,
    otherwise they are the object's own members."""
    keys = list(keys)
    if key_member is not None and len(keys) != len(records):
        raise JsonError("%d idempotency keys for %d records" % (len(keys), len(records)))
    raw = getattr(records, "_untouched_batch", None)
    if _host is not None:
        batch = raw() if raw is not None else None
        if batch is None:
            batch = _codec.encode_batch(list(records))
        try:
            return bytes(
                _host.encode(batch, keys if key_member is not None else [], _host.Encoding(envelope, key_member, fields_member))
            )
        except Err as e:
            raise JsonError(getattr(e.value, "value", str(e.value)))
    return _encode_here(records, keys, envelope, key_member, fields_member)


def _plain(v):
    if isinstance(v, Json):
        try:
            return _json.loads(v.text)
        except ValueError:
            return v.text
    if isinstance(v, (bytes, bytearray)):
        return _base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, _datetime):
        return _rfc3339(v)
    if isinstance(v, float) and not _math.isfinite(v):
        return None
    return v


def _rfc3339(dt):
    if dt.tzinfo is not None:
        dt = dt.astimezone(_timezone.utc).replace(tzinfo=None)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        frac = "%06d" % dt.microsecond
        # Milliseconds when they say it all, as the host writes them.
        text += "." + (frac[:3] if frac.endswith("000") else frac)
    return text + "Z"


def _encode_here(records, keys, envelope, key_member, fields_member):
    items = []
    for i, r in enumerate(records):
        fields = {name: _plain(v) for name, v in r.items()}
        if key_member is None and fields_member is None:
            items.append(fields)
            continue
        item = {}
        if key_member is not None:
            item[key_member] = keys[i]
        if fields_member is not None:
            item[fields_member] = fields
        else:
            item.update(fields)
        items.append(item)
    doc = {envelope: items} if envelope is not None else items
    return _json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
