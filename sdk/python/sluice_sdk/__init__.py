"""Write Sluice transform plugins in Python.

The smallest plugin (``plugin.py``)::

    import sluice_sdk as sluice

    class Plugin(sluice.Transform):
        def init(self, config):
            self.field = config.get("field", "name")

        def process(self, record):
            if isinstance(record.get(self.field), str):
                record[self.field] = record[self.field].strip()
            return sluice.KEEP

Build it into a component with ``sluice plugin build``. The SDK decodes each
batch into :class:`Record` objects, calls ``process`` for each (or your
``process_batch``) and encodes the outcomes: the concepts and names are those
of the Rust SDK.
"""

from . import log
from ._record import OPERATIONS, Json, Record

__all__ = [
    "DROP",
    "KEEP",
    "OPERATIONS",
    "Emit",
    "InvalidConfig",
    "Json",
    "Record",
    "Reject",
    "Transform",
    "emit",
    "log",
    "reject",
]


class _Keep:
    __slots__ = ()

    def __repr__(self):
        return "KEEP"


class _Drop:
    __slots__ = ()

    def __repr__(self):
        return "DROP"


#: Keep the record, with any changes made to it (returning None means the same).
KEEP = _Keep()
#: Filter the record out on purpose: it is counted, not dead-lettered.
DROP = _Drop()


class Reject:
    """Refuse the record: it goes to the dead-letter sink with this reason."""

    __slots__ = ("code", "message", "field")

    def __init__(self, code, message, field=None):
        #: A machine-readable code in snake_case (``invalid_email``).
        self.code = str(code)
        #: A message a person can act on.
        self.message = str(message)
        #: The field at fault, if one is.
        self.field = None if field is None else str(field)

    def __repr__(self):
        return "Reject(%r, %r, field=%r)" % (self.code, self.message, self.field)


class Emit:
    """Replace the record by these records (none, one or many)."""

    __slots__ = ("records",)

    def __init__(self, records):
        self.records = list(records)

    def __repr__(self):
        return "Emit(%r)" % (self.records,)


def reject(code, message, field=None):
    """Refuse the record (optionally naming the field at fault)."""
    return Reject(code, message, field)


def emit(*records):
    """Replace the record by ``records`` (``emit()`` emits nothing)."""
    if len(records) == 1 and isinstance(records[0], (list, tuple)):
        records = records[0]
    return Emit(records)


class InvalidConfig(Exception):
    """Raise from ``init`` when the config is wrong: name the key and what is
    expected. Sluice shows the message and does not start the plugin."""


class Transform:
    """Base class of a plugin. Sluice creates one object per instance, calls
    :meth:`init` once with the plugin's config, then :meth:`process_batch`
    for every batch, in order. After a failure the instance is thrown away
    and a fresh one initialised, so keep no state that must survive one.
    """

    def init(self, config):
        """Receives the ``config`` table of the pipeline file as a dict.
        Raise :class:`InvalidConfig` naming the key at fault when it is wrong."""

    def process(self, record):
        """Decides one record: change it and return ``KEEP`` (or None),
        return ``DROP``, ``reject(code, message, field)`` or ``emit(...)``."""
        return KEEP

    def process_batch(self, records):
        """Returns one outcome per record, in order. The default calls
        :meth:`process` for each; override it to work on the whole batch."""
        process = self.process
        return [process(r) for r in records]
