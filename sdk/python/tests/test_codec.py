"""Unit tests of the Python SDK's batch encoding (run natively by
scripts/test.sh: ``python3 -m unittest discover -s sdk/python/tests``).

The end-to-end tests run the SDK inside components; these check the
decoder's fast paths against the encoder on records of every shape, and
that a damaged batch is refused with an error, never half-read.
"""

import os
import random
import struct
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sluice_sdk import Json, Record, _codec  # noqa: E402

_NAMES = ["a", "bb", "é", "CUST_NO", "x" * 40]
_OTHER = [None, True, False, 7, -(2**63), 2**63 - 1, 1.5, "", "ü😀", b"\x00\xff", Json('{"a":1}')]


def _batch(records):
    out = bytearray(b"\x01") + _codec._U32.pack(len(records))
    for r in records:
        _codec.encode_record(out, r)
    return bytes(out)


def _records(seed, n):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        fields = {}
        for name in rnd.sample(_NAMES, rnd.randrange(len(_NAMES) + 1)):
            fields[name] = rnd.choice(_OTHER) if rnd.random() < 0.4 else "v%d" % rnd.randrange(100)
        r = Record(
            rnd.choice(["s", "t"]),
            fields,
            key=rnd.choice([None, 5, "k"]),
            op=rnd.choice(["insert", "update", "delete", "snapshot"]),
            headers=[("h", b"1")] if rnd.random() < 0.2 else [],
        )
        r.position = str(i)
        r.event_time = rnd.choice([None, 12345, -1])
        out.append(r)
    return out


def _same(test, a, b):
    test.assertEqual(list(a.items()), list(b.items()))
    test.assertEqual([type(v) for v in a.values()], [type(v) for v in b.values()])
    test.assertEqual(
        (a.stream, a.op, a.key, a.headers, a.position, a.event_time),
        (b.stream, b.op, b.key, b.headers, b.position, b.event_time),
    )


class DecodeTest(unittest.TestCase):
    def test_records_of_changing_shapes_decode_as_encoded(self):
        # Names reordered, added and dropped, and text turning into other
        # kinds between neighbours: what the shape fast path must not mistake.
        records = _records(5, 3000)
        for size in (1, 7, 256, 3000):
            for start in range(0, len(records), size):
                chunk = records[start : start + size]
                for a, b in zip(chunk, _codec.decode_batch(_batch(chunk))):
                    _same(self, a, b)

    def test_a_long_run_of_one_shape_then_a_change(self):
        same = [Record("s", {"a": "x%d" % i, "bb": "y", "c": "z"}) for i in range(50)]
        changed = [
            Record("s", {"a": 1, "bb": "y", "c": "z"}),
            Record("s", {"bb": "y", "a": "x"}),
            Record("s", {"a": "x", "bb": "y", "c": "z", "d": "w"}),
            Record("s", {"a": "x"}),
            Record("s", {"a": "x", "bb": None, "c": "z"}),
        ]
        records = same + changed + same
        for a, b in zip(records, _codec.decode_batch(_batch(records))):
            _same(self, a, b)

    def test_every_truncation_is_refused(self):
        data = _batch(_records(9, 20))
        for cut in range(len(data)):
            with self.assertRaises((_codec.MalformedBatch, ValueError, IndexError, struct.error)):
                _codec.decode_batch(data[:cut])

    def test_trailing_bytes_and_bad_codes_are_refused(self):
        data = _batch([Record("s", {"a": "x"})])
        with self.assertRaisesRegex(_codec.MalformedBatch, "trail"):
            _codec.decode_batch(data + b"\0")
        with self.assertRaisesRegex(_codec.MalformedBatch, "version"):
            _codec.decode_batch(b"\x02" + data[1:])
        bad_op = bytearray(data)
        bad_op[9] = 9
        with self.assertRaisesRegex(_codec.MalformedBatch, "operation"):
            _codec.decode_batch(bytes(bad_op))

    def test_invalid_utf8_is_refused(self):
        data = bytearray(_batch([Record("s", {"a": "xy"})]))
        data[-1] = 0xFF
        with self.assertRaises(UnicodeDecodeError):
            _codec.decode_batch(bytes(data))


class EncodeTest(unittest.TestCase):
    def test_values_out_of_range_or_of_unknown_types_name_the_field(self):
        with self.assertRaisesRegex(OverflowError, "field `n`"):
            _batch([Record("s", {"n": 2**63})])
        with self.assertRaisesRegex(TypeError, "field `o`: a object"):
            _batch([Record("s", {"o": object()})])
        with self.assertRaisesRegex(TypeError, "field name must be a str"):
            _batch([Record("s", {5: "x"})])


if __name__ == "__main__":
    unittest.main()
