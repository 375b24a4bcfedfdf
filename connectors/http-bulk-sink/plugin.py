"""A sink connector for bulk JSON endpoints, as a vendor writes one.

Each batch is one POST of ``{"records": [{"key": K, "record": {...}}]}``:
``K`` is the host's idempotency key, so a batch replayed after a crash or a
retry replaces what it wrote instead of adding to it. The endpoint answers
one result per record; a record it refuses becomes a dead letter with the
endpoint's code and message. 5xx, 429 and lost connections are transient
(the host retries the batch), 401/403 and other 4xx are fatal.
"""

import sluice_sdk as sluice
from sluice_sdk import connector, http, jsonio


class BulkSink(connector.Sink):
    def open(self, config):
        url = config.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise sluice.InvalidConfig("`url`: give the bulk endpoint, e.g. http://host:8080/bulk")
        unknown = set(config) - {"url", "token_secret", "timeout_s"}
        if unknown:
            raise sluice.InvalidConfig("unknown key `%s`" % sorted(unknown)[0])
        self.url = url
        self.timeout = float(config.get("timeout_s", 30))
        self.headers = {"content-type": "application/json"}
        name = config.get("token_secret")
        if name:
            token = connector.secret(name)
            if token is None:
                raise sluice.InvalidConfig("`token_secret`: the pipeline grants no secret `%s`" % name)
            self.headers["authorization"] = "Bearer " + token

    def write(self, records, keys):
        # Written by the host, natively: the records are never decoded in Python.
        body = jsonio.encode(records, keys, envelope="records", key_member="key", fields_member="record")
        try:
            resp = http.request("POST", self.url, self.headers, body, timeout=self.timeout)
        except http.HttpError as e:
            if e.denied:
                raise connector.Fatal(str(e))
            raise connector.Transient(str(e))
        if resp.status == 429 or resp.status >= 500:
            raise connector.Transient("%s answered %d" % (self.url, resp.status))
        if resp.status in (401, 403):
            raise connector.Fatal("%s answered %d: check the token" % (self.url, resp.status))
        if resp.status != 200:
            raise connector.Fatal("%s answered %d: %s" % (self.url, resp.status, resp.text()[:200]))
        try:
            results = resp.json()["results"]
        except (ValueError, KeyError, TypeError):
            # A cut-off answer: the batch may or may not be stored; the keys make a retry safe.
            raise connector.Transient("%s sent an answer that is not the expected JSON" % self.url)
        refused = []
        for res in results:
            if res.get("status") != "ok":
                refused.append(
                    connector.Refusal(res["index"], res.get("code", "refused"), res.get("message", "refused by the endpoint"))
                )
        return refused
