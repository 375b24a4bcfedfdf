"""Log lines into the Sluice host's log, tagged with the plugin's name and
version. ``logging`` works too: the SDK routes the root logger here."""

import logging

try:
    from wit_world.imports import log as _wit_log

    try:
        from wit_world.imports.types import Level as _Level
    except ImportError:  # connector worlds: `types` is also wasi:http's
        from wit_world.imports.sluice_plugin_types import Level as _Level

    _LEVELS = {
        "trace": _Level.TRACE,
        "debug": _Level.DEBUG,
        "info": _Level.INFO,
        "warn": _Level.WARN,
        "error": _Level.ERROR,
    }

    def _emit(level, message):
        _wit_log.log(_LEVELS[level], str(message))

except ImportError:  # outside a component (unit tests of plugin logic)

    def _emit(level, message):
        print("[%s] %s" % (level, message))


def trace(message):
    """Very detailed diagnostics."""
    _emit("trace", message)


def debug(message):
    """Diagnostics for plugin authors."""
    _emit("debug", message)


def info(message):
    """Normal operation."""
    _emit("info", message)


def warn(message):
    """Something looks wrong but processing continues."""
    _emit("warn", message)


def error(message):
    """Something failed."""
    _emit("error", message)


class Handler(logging.Handler):
    """A ``logging`` handler that writes to the Sluice log."""

    def emit(self, record):
        if record.levelno >= logging.ERROR:
            level = "error"
        elif record.levelno >= logging.WARNING:
            level = "warn"
        elif record.levelno >= logging.INFO:
            level = "info"
        else:
            level = "debug"
        try:
            _emit(level, self.format(record))
        except Exception:  # a log line must never fail a batch
            pass


def install():
    """Routes the root ``logging`` logger to Sluice (done by the SDK at init)."""
    root = logging.getLogger()
    if not any(isinstance(h, Handler) for h in root.handlers):
        root.addHandler(Handler())
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
