"""Outgoing HTTP for connectors, through the host (``wasi:http``).

The host sends each request over its own HTTP/TLS stack, only to an origin
the pipeline grants (``grants.http``), and may add the operator's credential
header (``grants.auth``), which the connector never sees::

    resp = http.request("GET", "http://127.0.0.1:8080/customers?limit=10")
    resp.status, resp.header("content-type"), resp.json()
"""

import json as _json

try:
    from componentize_py_types import Err, Ok
    from wit_world.imports import outgoing_handler, streams
    from wit_world.imports import wasi_http_types as t
except ImportError:  # outside a component (unit tests of plugin logic)
    outgoing_handler = None


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


def _split(url):
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise HttpError("%s: no scheme (http:// or https://)" % url)
    cut = len(rest)
    for c in "/?":
        i = rest.find(c)
        if i != -1:
            cut = min(cut, i)
    authority, path = rest[:cut], rest[cut:]
    if not authority:
        raise HttpError("%s: no host" % url)
    if not path.startswith("/"):
        path = "/" + path
    return scheme, authority, path


def request(method, url, headers=None, body=None, timeout=None):
    """Sends a request and reads the whole response. ``body``: bytes or str.
    ``timeout`` (seconds) bounds the first byte and the gaps between bytes;
    the host's ``request_timeout_ms`` caps it in any case."""
    if outgoing_handler is None:
        raise HttpError("%s: HTTP is only available inside the Sluice host" % url)
    scheme, authority, path = _split(url)
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else bytes(body)
    pairs = [(k.lower(), v.encode() if isinstance(v, str) else bytes(v)) for k, v in (headers or {}).items()]
    if data is not None and not any(k == "content-length" for k, _ in pairs):
        # Sent with a length, not chunked: many servers accept only that.
        pairs.append(("content-length", str(len(data)).encode()))
    fields = t.Fields.from_list(pairs)
    req = t.OutgoingRequest(fields)
    methods = {
        "GET": t.Method_Get(), "POST": t.Method_Post(), "PUT": t.Method_Put(),
        "DELETE": t.Method_Delete(), "PATCH": t.Method_Patch(), "HEAD": t.Method_Head(),
    }
    req.set_method(methods.get(method.upper()) or t.Method_Other(method.upper()))
    req.set_scheme(t.Scheme_Https() if scheme == "https" else t.Scheme_Http() if scheme == "http" else t.Scheme_Other(scheme))
    req.set_authority(authority)
    req.set_path_with_query(path)
    out_body = req.body()
    options = t.RequestOptions()
    if timeout is not None:
        nanos = int(timeout * 1e9)
        options.set_first_byte_timeout(nanos)
        options.set_between_bytes_timeout(nanos)
    try:
        future = outgoing_handler.handle(req, options)
    except Err as e:
        raise _error(url, e.value)
    if data is not None:
        stream = out_body.write()
        try:
            for i in range(0, len(data), 4096):
                stream.blocking_write_and_flush(data[i:i + 4096])
        except Err:
            # The request ended before its body was sent (the server, or
            # the host, answered early): the response says why.
            pass
        stream.__exit__(None, None, None)
    try:
        t.OutgoingBody.finish(out_body, None)
    except Err:
        pass
    while True:
        got = future.get()
        if got is not None:
            break
        future.subscribe().block()
    inner = got.value if isinstance(got, Ok) else None
    if inner is None:
        raise HttpError("%s: the response was taken twice" % url)
    if isinstance(inner, Err):
        raise _error(url, inner.value)
    resp = inner.value if isinstance(inner, Ok) else inner
    status = resp.status()
    hdrs = [(k.lower(), v.decode("utf-8", "replace")) for k, v in resp.headers().entries()]
    incoming = resp.consume()
    stream = incoming.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(65536))
        except Err as e:
            if isinstance(e.value, streams.StreamError_Closed):
                break
            raise HttpError("%s: reading the response failed" % url)
    stream.__exit__(None, None, None)
    return Response(status, hdrs, b"".join(chunks))


def _error(url, code):
    name = type(code).__name__.replace("ErrorCode_", "")
    if name == "HttpRequestDenied":
        return HttpError("%s: refused by the host: its origin is not granted to this connector" % url, denied=True)
    timeout = name in ("ConnectionTimeout", "ConnectionReadTimeout", "ConnectionWriteTimeout", "HttpResponseTimeout")
    return HttpError("%s: %s" % (url, name), timeout=timeout)
