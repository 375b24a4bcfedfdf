"""Unit tests of ``sluice_sdk.jsonio`` outside a component (its Python
path) and of the batch view a sink's ``write`` receives. Inside a
component the host writes the document; the end-to-end tests of
``connectors/http-bulk-sink`` check what its server received.
"""

import json
import os
import sys
import unittest
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sluice_sdk import Json, Record, _codec, jsonio  # noqa: E402


def _records():
    a = Record("c", {
        "id": 1,
        "name": 'Zoë "Z"\n',
        "raw": b"\x00\xff",
        "at": datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=timezone.utc),
        "ms": datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc),
        "tags": Json('[1, {"b": 2}]'),
        "nan": float("nan"),
        "f": 1.5,
        "none": None,
    })
    return [a, Record("c", {})]


FIELDS = {
    "id": 1,
    "name": 'Zoë "Z"\n',
    "raw": "AP8=",
    "at": "2023-11-14T22:13:20.123456Z",
    "ms": "2023-11-14T22:13:20.123Z",
    "tags": [1, {"b": 2}],
    "nan": None,
    "f": 1.5,
    "none": None,
}


class EncodeTest(unittest.TestCase):
    def test_every_shape_of_document(self):
        recs = _records()
        keys = ["k1", "k2"]
        self.assertEqual(json.loads(jsonio.encode(recs)), [FIELDS, {}])
        self.assertEqual(
            json.loads(jsonio.encode(recs, keys, envelope="records", key_member="key", fields_member="record")),
            {"records": [{"key": "k1", "record": FIELDS}, {"key": "k2", "record": {}}]},
        )
        self.assertEqual(
            json.loads(jsonio.encode(recs, keys, key_member="_id")),
            [dict({"_id": "k1"}, **FIELDS), {"_id": "k2"}],
        )
        # Compact, UTF-8, key first: the bytes the host writes for these.
        self.assertEqual(
            jsonio.encode([Record("c", {"a": "é", "b": [1]})], ["k"], key_member="key"),
            '[{"key":"k","a":"é","b":[1]}]'.encode("utf-8"),
        )

    def test_a_wrong_number_of_keys_is_an_error(self):
        with self.assertRaises(jsonio.JsonError) as e:
            jsonio.encode(_records(), ["one"], key_member="key")
        self.assertEqual(str(e.exception), "1 idempotency keys for 2 records")

    def test_the_batch_view_decodes_only_when_looked_at(self):
        recs = _records()
        view = _codec.BatchView(_codec.encode_batch(recs))
        self.assertEqual(len(view), 2)
        self.assertIsNone(view._records)
        self.assertIsNotNone(view._untouched_batch())
        self.assertEqual(json.loads(jsonio.encode(view)), [FIELDS, {}])
        self.assertEqual(view[0]["id"], 1)
        self.assertIsNotNone(view._untouched_batch())
        view[0]["id"] = 2
        # A changed record: the batch the host sent is no longer what to write.
        self.assertIsNone(view._untouched_batch())
        self.assertEqual(json.loads(jsonio.encode(view))[0]["id"], 2)
        with self.assertRaises(_codec.MalformedBatch):
            _codec.BatchView(b"\x02\0\0\0\0")


if __name__ == "__main__":
    unittest.main()
