"""Connectors in Python: sources that read from an outside system and sinks
that write to one.

``plugin.py`` of a source (with a ``connector.toml`` saying ``kind = "source"``)::

    import sluice_sdk as sluice
    from sluice_sdk import connector, http

    class Plugin(connector.Source):
        def open(self, config, resume):
            self.url = config["url"]
            self.after = int(resume or 0)   # the position the sink committed last

        def poll(self, max_records, max_wait_ms):
            resp = http.request("GET", "%s?after=%d&limit=%d" % (self.url, self.after, max_records))
            if resp.status == 429 or resp.status >= 500:
                raise connector.Transient("server answered %d" % resp.status)
            page = resp.json()
            records = [sluice.Record("items", item, key=item["id"], op="snapshot") for item in page["items"]]
            self.after = page["next"] or self.after
            return connector.Polled(records, str(self.after), end_of_data=page["next"] is None)

The host calls ``open`` once per instance (``resume`` is the last position
the sink committed, or None), then ``poll`` in a loop; a position is
checkpointed only once every record before it is committed, and handed back
to ``open`` after a restart.


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


class Polled:
    """What one ``poll`` returns: ``records`` (a list of :class:`sluice_sdk.Record`,
    possibly empty), ``position`` (the position just after the last record, a
    string; None keeps the previous one, allowed only with no records) and
    ``end_of_data`` (True when there is nothing more to read, ever).

    A record whose ``position`` is empty gets the batch's."""

    __slots__ = ("records", "position", "end_of_data")

    def __init__(self, records=(), position=None, end_of_data=False):
        self.records = list(records)
        self.position = None if position is None else str(position)
        self.end_of_data = bool(end_of_data)

    def __repr__(self):
        return "Polled(%d records, position=%r, end_of_data=%r)" % (
            len(self.records), self.position, self.end_of_data)


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


class Source:
    """Subclass it in ``plugin.py`` of a source connector.

    After a trap or a missed deadline the instance is thrown away and a fresh
    one opened at the last position handed over: keep no state that must
    survive a crash outside the position."""

    def open(self, config, resume):
        """Prepares to read from just after ``resume`` (None: from the start);
        ``config`` is the connector's config (a dict)."""

    def poll(self, max_records, max_wait_ms):
        """Reads at most ``max_records`` records, waiting at most
        ``max_wait_ms`` milliseconds for the first; returns a :class:`Polled`."""
        raise NotImplementedError("a source connector must define poll(max_records, max_wait_ms)")

    def committed(self, position):
        """Everything up to ``position`` is durably written: acknowledge it
        upstream if the system wants that. The default does nothing."""


class Sink:
    """Subclass it in ``plugin.py`` of a sink connector."""

    def open(self, config):
        """Prepares to write; ``config`` is the connector's config (a dict)."""

    def write(self, records, keys):
        """Writes ``records``; ``keys[i]`` is record ``i``'s idempotency key (the
        same record replayed after a crash gets the same key). Returns the
        refused records as :class:`Refusal` objects (or an empty list)."""
        raise NotImplementedError("a sink connector must define write(records, keys)")

    def commit(self):
        """Makes what was written durable. The default does nothing."""
