"""The component's entry point for a source connector, generated around the
plugin by ``sluice plugin build`` (``connector.toml`` says ``kind =
"source"``): it implements the WIT ``source`` interface on top of the plugin
module (``plugin.py``) and the SDK. Plugin authors do not edit it.
"""

import sys

import wit_world.exports
from wit_world.imports.connector_types import Polled

from sluice_sdk import _codec, _glue, connector, log

_plugin = None


def _encode(records, position):
    """The batch encoding of ``records``; a record without a position gets
    ``position`` (the batch's)."""
    if not records:
        return b""
    out = bytearray()
    out.append(1)
    out += _codec._U32.pack(len(records))
    for r in records:
        if not r.position and position is not None:
            r.position = position
        _codec.encode_record(out, r)
    return bytes(out)


class Source(wit_world.exports.Source):
    """The WIT export: ``open``, ``poll``, ``committed``."""

    def open(self, config: str, resume) -> None:
        global _plugin
        log.install()
        cfg = _glue.parse_config(config)
        try:
            p = _glue.make_plugin(connector.Source)
            p.open(cfg, resume)
        except Exception as e:
            raise _glue.classify(e)
        _plugin = p

    def poll(self, max_records: int, max_wait_ms: int):
        if _plugin is None:
            raise _glue.fatal("`poll` before a successful `open`")
        try:
            got = _plugin.poll(max_records, max_wait_ms)
            if got is None:
                got = connector.Polled()
            if not isinstance(got, connector.Polled):
                raise TypeError("poll returned a %s: return a sluice_sdk.connector.Polled" % type(got).__name__)
            batch = _encode(got.records, got.position)
        except Exception as e:
            raise _glue.classify(e)
        return Polled(batch, got.position, got.end_of_data)

    def committed(self, position: str) -> None:
        if _plugin is None:
            return
        try:
            _plugin.committed(position)
        except Exception as e:
            log.warn("committed(%r) failed: %s" % (position, _glue.describe(e)))


sys.dont_write_bytecode = True
