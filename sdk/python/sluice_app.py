"""The component's entry point, generated around the plugin by ``sluice
plugin build``: it implements the WIT ``transform`` interface on top of the
plugin module (``plugin.py``) and the SDK. Plugin authors do not edit it.
"""

import json
import struct
import sys
import traceback

import wit_world.exports
from componentize_py_types import Err
from wit_world.imports.types import (
    BatchError_MalformedBatch,
    BatchError_NotInitialized,
    BatchError_Other,
    InitError_InvalidConfig,
    InitError_Other,
)

import plugin as _module
import sluice_sdk
from sluice_sdk import _codec, log

_U32 = _codec._U32
_plugin = None


def _describe(exc):
    """``Type: message (at file:line in function)`` for the innermost plugin frame."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if "sluice_sdk" not in frame.filename and not frame.filename.endswith("sluice_app.py"):
            where = " (at %s:%d in %s)" % (frame.filename.rsplit("/", 1)[-1], frame.lineno, frame.name)
            break
    return "%s: %s%s" % (type(exc).__name__, exc, where)


def _make_plugin():
    module = _module
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, sluice_sdk.Transform)
            and value is not sluice_sdk.Transform
            and value.__module__ == module.__name__
        ):
            return value()
    if callable(getattr(module, "process", None)):
        # Functions instead of a class: `process(record)`, optional `init(config)`.
        class _Functions(sluice_sdk.Transform):
            def init(self, config):
                if callable(getattr(module, "init", None)):
                    module.init(config)

            def process(self, record):
                return module.process(record)

        return _Functions()
    raise TypeError(
        "plugin.py defines no subclass of sluice_sdk.Transform and no `process(record)` function"
    )


def _encode_outcomes(records, outcomes):
    if not isinstance(outcomes, list):
        outcomes = list(outcomes)
    if len(outcomes) != len(records):
        raise ValueError(
            "process_batch returned %d outcomes for %d records" % (len(outcomes), len(records))
        )
    out = bytearray(b"\x01")
    out += _U32.pack(len(records))
    for rec, oc in zip(records, outcomes):
        if oc is None or oc is sluice_sdk.KEEP or oc is rec:
            if rec._changed:
                out.append(1)
                _codec.encode_record(out, rec)
            else:
                out.append(0)
        elif oc is sluice_sdk.DROP:
            out.append(3)
        elif isinstance(oc, sluice_sdk.Reject):
            out.append(4)
            _codec._put_str(out, oc.code)
            if oc.field is None:
                out.append(0)
            else:
                out.append(1)
                _codec._put_str(out, oc.field)
            _codec._put_str(out, oc.message)
        else:
            if isinstance(oc, sluice_sdk.Emit):
                emitted = oc.records
            elif isinstance(oc, (list, tuple)):
                emitted = oc
            else:
                raise TypeError(
                    "process returned a %s: return KEEP (or None), DROP, reject(...), "
                    "emit(...) or a list of records" % type(oc).__name__
                )
            out.append(2)
            out += _U32.pack(len(emitted))
            for r in emitted:
                _codec.encode_record(out, r)
    return bytes(out)


class Transform(wit_world.exports.Transform):
    """The WIT export: ``init`` and ``process``."""

    def init(self, config: str) -> None:
        global _plugin
        log.install()
        try:
            cfg = json.loads(config) if config else {}
        except ValueError as e:
            raise Err(InitError_InvalidConfig("the config is not JSON: %s" % e))
        try:
            p = _make_plugin()
            p.init(cfg)
        except sluice_sdk.InvalidConfig as e:
            raise Err(InitError_InvalidConfig(str(e)))
        except Exception as e:
            raise Err(InitError_Other(_describe(e)))
        _plugin = p

    def process(self, batch: bytes) -> bytes:
        if _plugin is None:
            raise Err(BatchError_NotInitialized())
        try:
            records = _codec.decode_batch(batch)
        except (_codec.MalformedBatch, ValueError, IndexError, struct.error) as e:
            raise Err(BatchError_MalformedBatch(str(e)))
        try:
            outcomes = _plugin.process_batch(records)
            return _encode_outcomes(records, outcomes)
        except Exception as e:
            raise Err(BatchError_Other(_describe(e)))


sys.dont_write_bytecode = True
