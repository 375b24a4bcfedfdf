"""What the connector entry points (``sluice_source_app``, ``sluice_sink_app``)
share: finding the plugin class, parsing the config, and turning a Python
exception into the WIT ``connector-error`` the host acts on."""

import json
import traceback

from componentize_py_types import Err
from wit_world.imports.connector_types import (
    ConnectorError_Fatal,
    ConnectorError_InvalidConfig,
    ConnectorError_Transient,
)

import plugin as _module
import sluice_sdk
from sluice_sdk import connector


def describe(exc):
    """``Type: message (at file:line in function)`` for the innermost plugin frame."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if "sluice_sdk" not in frame.filename and not frame.filename.endswith("_app.py"):
            where = " (at %s:%d in %s)" % (frame.filename.rsplit("/", 1)[-1], frame.lineno, frame.name)
            break
    return "%s: %s%s" % (type(exc).__name__, exc, where)


def make_plugin(base):
    """An instance of the subclass of ``base`` that ``plugin.py`` defines."""
    for value in vars(_module).values():
        if (
            isinstance(value, type)
            and issubclass(value, base)
            and value is not base
            and value.__module__ == _module.__name__
        ):
            return value()
    raise TypeError("plugin.py defines no subclass of sluice_sdk.connector.%s" % base.__name__)


def fatal(message):
    """A fatal ``connector-error``, ready to raise."""
    return Err(ConnectorError_Fatal(message))


def parse_config(config):
    """The config JSON text as a dict; an ``invalid-config`` error otherwise."""
    try:
        cfg = json.loads(config) if config else {}
    except ValueError as e:
        raise Err(ConnectorError_InvalidConfig("the config is not JSON: %s" % e))
    if not isinstance(cfg, dict):
        raise Err(ConnectorError_InvalidConfig("the config is not a table"))
    return cfg


def classify(e):
    """The ``connector-error`` for an exception a plugin raised."""
    if isinstance(e, connector.Transient):
        return Err(ConnectorError_Transient(str(e)))
    if isinstance(e, sluice_sdk.InvalidConfig):
        return Err(ConnectorError_InvalidConfig(str(e)))
    if isinstance(e, connector.Fatal):
        return Err(ConnectorError_Fatal(str(e)))
    return Err(ConnectorError_Fatal(describe(e)))
