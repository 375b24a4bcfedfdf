"""The component's entry point for a sink connector, generated around the
plugin by ``sluice plugin build`` (``connector.toml`` says ``kind = "sink"``):
it implements the WIT ``sink`` interface on top of the plugin module
(``plugin.py``) and the SDK. Plugin authors do not edit it.
"""

import sys

import wit_world.exports
from wit_world.imports.connector_types import Refusal

from sluice_sdk import _codec, _glue, connector, log

_plugin = None


class Sink(wit_world.exports.Sink):
    """The WIT export: ``open``, ``write``, ``commit``."""

    def open(self, config: str) -> None:
        global _plugin
        log.install()
        cfg = _glue.parse_config(config)
        try:
            p = _glue.make_plugin(connector.Sink)
            p.open(cfg)
        except Exception as e:
            raise _glue.classify(e)
        _plugin = p

    def write(self, batch: bytes, idempotency_keys):
        if _plugin is None:
            raise _glue.fatal("`write` before a successful `open`")
        try:
            # Decoded when the plugin first looks at a record (a sink that
            # hands the batch to `jsonio.encode` never does).
            records = _codec.BatchView(batch)
        except Exception as e:
            raise _glue.fatal("malformed batch: %s" % e)
        try:
            refused = _plugin.write(records, list(idempotency_keys)) or []
            return [Refusal(r.index, r.code, r.message) for r in refused]
        except Exception as e:
            raise _glue.classify(e)

    def commit(self) -> None:
        if _plugin is None:
            raise _glue.fatal("`commit` before a successful `open`")
        try:
            _plugin.commit()
        except Exception as e:
            raise _glue.classify(e)


sys.dont_write_bytecode = True
