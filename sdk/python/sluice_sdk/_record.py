"""Records as Python objects: a mutable mapping of fields plus metadata."""

import json
from collections.abc import MutableMapping

#: The source operations, in their encoding order.
OPERATIONS = ("insert", "update", "delete", "snapshot")


class Json:
    """A JSON object or array value, kept as its text.

    ``value`` parses it (a fresh copy each time); assign a ``dict`` or
    ``list`` to a field to store JSON.
    """

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    @classmethod
    def of(cls, obj):
        """The compact JSON text of a dict or list."""
        return cls(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))

    @property
    def value(self):
        """The parsed object or array."""
        return json.loads(self.text)

    def __eq__(self, other):
        return isinstance(other, Json) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return "Json(%r)" % self.text


class Record(MutableMapping):
    """One record: its fields as a mapping (``record["email"]``), plus
    ``stream``, ``op``, ``key``, ``headers``, ``position`` and ``event_time``.

    Values are ``None``, ``bool``, ``int`` (64-bit), ``float``, ``str``,
    ``bytes``, ``datetime`` (UTC, microseconds) or :class:`Json` (store a
    ``dict`` or ``list`` to write JSON). Field order is kept.
    """

    __slots__ = ("_fields", "_stream", "_op", "_key", "_headers", "position", "event_time", "_changed")

    def __init__(self, stream="", fields=None, key=None, op="insert", headers=()):
        if op not in OPERATIONS:
            raise ValueError("op must be one of %s, not %r" % (", ".join(OPERATIONS), op))
        self._fields = dict(fields or {})
        self._stream = stream
        self._op = op
        self._key = key
        self._headers = [
            (str(n), v.encode("utf-8") if isinstance(v, str) else bytes(v)) for n, v in headers
        ]
        #: The source position (read-only for the host: it keeps the input's).
        self.position = ""
        #: When the event happened at the source, microseconds since the epoch, or None.
        self.event_time = None
        self._changed = True

    @classmethod
    def _decoded(cls, op, stream, position, event_time, key, headers, fields):
        r = cls.__new__(cls)
        r._fields = fields
        r._stream = stream
        r._op = op
        r._key = key
        r._headers = headers
        r.position = position
        r.event_time = event_time
        r._changed = False
        return r

    # -- the fields, as a mapping --
    def __getitem__(self, name):
        return self._fields[name]

    def __setitem__(self, name, value):
        self._fields[name] = value
        self._changed = True

    def __delitem__(self, name):
        del self._fields[name]
        self._changed = True

    def __iter__(self):
        return iter(self._fields)

    def __len__(self):
        return len(self._fields)

    def __contains__(self, name):
        return name in self._fields

    def get(self, name, default=None):
        """The value of field ``name``, or ``default`` when it is absent."""
        return self._fields.get(name, default)

    def set(self, name, value):
        """Sets field ``name`` (added at the end when new)."""
        self[name] = value

    def has(self, name):
        """True when the record has field ``name`` (even if it is None)."""
        return name in self._fields

    def remove(self, name):
        """Removes field ``name``; returns its value, or None when absent."""
        if name in self._fields:
            self._changed = True
            return self._fields.pop(name)
        return None

    def rename(self, old, new):
        """Renames field ``old`` to ``new`` in place; False when ``old`` is absent."""
        if old not in self._fields:
            return False
        self._fields = {(new if k == old else k): v for k, v in self._fields.items()}
        self._changed = True
        return True

    # -- metadata --
    @property
    def stream(self):
        """The stream or table name; set it to route the record elsewhere."""
        return self._stream

    @stream.setter
    def stream(self, value):
        self._stream = str(value)
        self._changed = True

    @property
    def op(self):
        """The operation: ``insert``, ``update``, ``delete`` or ``snapshot``."""
        return self._op

    @op.setter
    def op(self, value):
        if value not in OPERATIONS:
            raise ValueError("op must be one of %s, not %r" % (", ".join(OPERATIONS), value))
        self._op = value
        self._changed = True

    @property
    def key(self):
        """The record key (a value), or None."""
        return self._key

    @key.setter
    def key(self, value):
        self._key = value
        self._changed = True

    @property
    def headers(self):
        """The headers as a tuple of ``(name, bytes)``; use :meth:`add_header`."""
        return tuple(self._headers)

    def header(self, name):
        """The bytes of the first header called ``name``, or None."""
        for n, v in self._headers:
            if n == name:
                return v
        return None

    def add_header(self, name, value):
        """Appends a header (``value`` is ``bytes`` or ``str``)."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        self._headers.append((str(name), bytes(value)))
        self._changed = True

    def copy(self):
        """A new record with the same fields, metadata and headers."""
        r = Record(self._stream, self._fields, self._key, self._op, self._headers)
        r.position = self.position
        r.event_time = self.event_time
        return r

    def __repr__(self):
        return "Record(stream=%r, op=%r, key=%r, fields=%r)" % (
            self._stream,
            self._op,
            self._key,
            self._fields,
        )
