"""The component's entry point for a sink connector, generated around the
plugin by ``sluice plugin build`` (``connector.toml`` says ``kind = "sink"``):
it implements the WIT ``sink`` interface on top of the plugin module
(``plugin.py``) and the SDK. Plugin authors do not edit it.
"""

import json
import sys
import traceback

import wit_world.exports
from componentize_py_types import Err
from wit_world.imports.connector_types import (
    ConnectorError_Fatal,
    ConnectorError_InvalidConfig,
    ConnectorError_Transient,
    Refusal,
)

import plugin as _module
import sluice_sdk
from sluice_sdk import _codec, connector, log

_plugin = None


def _describe(exc):
    """``Type: message (at file:line in function)`` for the innermost plugin frame."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if "sluice_sdk" not in frame.filename and not frame.filename.endswith("_app.py"):
            where = " (at %s:%d in %s)" % (frame.filename.rsplit("/", 1)[-1], frame.lineno, frame.name)
            break
    return "%s: %s%s" % (type(exc).__name__, exc, where)


def _make_plugin():
    for value in vars(_module).values():
        if (
            isinstance(value, type)
            and issubclass(value, connector.Sink)
            and value is not connector.Sink
            and value.__module__ == _module.__name__
        ):
            return value()
    raise TypeError("plugin.py defines no subclass of sluice_sdk.connector.Sink")


def _classify(e):
    if isinstance(e, connector.Transient):
        return Err(ConnectorError_Transient(str(e)))
    if isinstance(e, sluice_sdk.InvalidConfig):
        return Err(ConnectorError_InvalidConfig(str(e)))
    if isinstance(e, connector.Fatal):
        return Err(ConnectorError_Fatal(str(e)))
    return Err(ConnectorError_Fatal(_describe(e)))


class Sink(wit_world.exports.Sink):
    """The WIT export: ``open``, ``write``, ``commit``."""

    def open(self, config: str) -> None:
        global _plugin
        log.install()
        try:
            cfg = json.loads(config) if config else {}
        except ValueError as e:
            raise Err(ConnectorError_InvalidConfig("the config is not JSON: %s" % e))
        try:
            p = _make_plugin()
            p.open(cfg)
        except Exception as e:
            raise _classify(e)
        _plugin = p

    def write(self, batch: bytes, idempotency_keys):
        if _plugin is None:
            raise Err(ConnectorError_Fatal("`write` before a successful `open`"))
        try:
            records = [r for r, _, _ in _codec.decode_batch(batch)]
        except Exception as e:
            raise Err(ConnectorError_Fatal("malformed batch: %s" % e))
        try:
            refused = _plugin.write(records, list(idempotency_keys)) or []
            return [Refusal(r.index, r.code, r.message) for r in refused]
        except Exception as e:
            raise _classify(e)

    def commit(self) -> None:
        if _plugin is None:
            raise Err(ConnectorError_Fatal("`commit` before a successful `open`"))
        try:
            _plugin.commit()
        except Exception as e:
            raise _classify(e)


sys.dont_write_bytecode = True
