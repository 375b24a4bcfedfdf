"""Outgoing HTTP for connectors, through the host (its ``http-client``
import: one call per request, the body in and out whole).

The host sends each request over its own HTTP/TLS stack, only to an origin
the pipeline grants (``grants.http``), and may add the operator's credential
header (``grants.auth``), which the connector never sees::

    resp = http.request("GET", "http://127.0.0.1:8080/customers?limit=10")
    resp.status, resp.header("content-type"), resp.json()
"""

import json as _json

try:
    from componentize_py_types import Err
    from wit_world.imports import http_client as _client
except ImportError:  # outside a component (unit tests of plugin logic)
    _client = None


class HttpError(Exception):
    """No response: refused by the host (``denied``), a timeout, a lost connection."""

    def __init__(self, message, denied=False, timeout=False):
        super().__init__(message)
        self.denied = denied
        self.timeout = timeout


class Response:
    """A response, read whole: ``status``, ``headers`` (lower-case names), ``body`` (bytes)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return _json.loads(self.body)


def request(method, url, headers=None, body=None, timeout=None):
    """Sends a request and reads the whole response. ``body``: bytes or str.
    ``timeout`` (seconds) bounds connecting, the first byte and the gaps
    between bytes; the host's ``request_timeout_ms`` caps it in any case."""
    if _client is None:
        raise HttpError("%s: HTTP is only available inside the Sluice host" % url)
    data = b""
    if body is not None:
        data = body.encode() if isinstance(body, str) else bytes(body)
    pairs = [(str(k), str(v)) for k, v in (headers or {}).items()]
    timeout_ms = None if timeout is None else max(0, int(timeout * 1000))
    try:
        resp = _client.send(_client.Request(method.upper(), url, pairs, data, timeout_ms))
    except Err as e:
        kind = type(e.value).__name__.rsplit("_", 1)[-1]
        raise HttpError(e.value.value, denied=kind == "Denied", timeout=kind == "Timeout")
    return Response(resp.status, list(resp.headers), bytes(resp.body))
