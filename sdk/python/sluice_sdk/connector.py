"""Sink connectors in Python: write records to an outside system.

``plugin.py`` of a sink (with a ``connector.toml`` saying ``kind = "sink"``)::

    import json
    import sluice_sdk as sluice
    from sluice_sdk import connector, http

    class Plugin(connector.Sink):
        def open(self, config):
            self.url = config["url"]

        def write(self, records, keys):
            body = json.dumps([{"key": k, "record": r.to_dict()} for r, k in zip(records, keys)])
            resp = http.request("POST", self.url, {"content-type": "application/json"}, body)
            if resp.status >= 500:
                raise connector.Transient("server error %d" % resp.status)
            return []  # or [connector.Refusal(index, code, message), ...]

The host calls ``open`` once per instance, then ``write`` and ``commit`` for
each batch; a batch is checkpointed only after ``commit`` returns. Raise
:class:`Transient` for what is worth retrying (the host retries the batch with
the same idempotency keys after a backoff), :class:`Fatal` to stop the
pipeline, :class:`sluice_sdk.InvalidConfig` from ``open`` for a wrong config.
"""

try:
    from wit_world.imports import secrets as _secrets
except ImportError:  # outside a component (unit tests of plugin logic)
    _secrets = None


class Transient(Exception):
    """Worth retrying: a rate limit, a busy server, a lost connection."""


class Fatal(Exception):
    """The connector cannot go on; the pipeline stops, positions are kept."""


class Refusal:
    """A record the target refused: it goes to the dead-letter sink."""

    __slots__ = ("index", "code", "message")

    def __init__(self, index, code, message):
        self.index = int(index)
        self.code = str(code)
        self.message = str(message)

    def __repr__(self):
        return "Refusal(%d, %r, %r)" % (self.index, self.code, self.message)


def secret(name):
    """The value of a secret the pipeline grants (``grants.secrets.NAME``), or None."""
    if _secrets is None:
        import os

        return os.environ.get("SLUICE_SECRET_" + name.upper())
    return _secrets.get(name)


class Sink:
    """Subclass it in ``plugin.py``."""

    def open(self, config):
        """Prepares to write; ``config`` is the connector's config (a dict)."""

    def write(self, records, keys):
        """Writes ``records``; ``keys[i]`` is record ``i``'s idempotency key (the
        same record replayed after a crash gets the same key). Returns the
        refused records as :class:`Refusal` objects (or an empty list)."""
        raise NotImplementedError("a sink connector must define write(records, keys)")

    def commit(self):
        """Makes what was written durable. The default does nothing."""
