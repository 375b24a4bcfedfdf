"""The Sluice batch encoding, version 1 (``codec/FORMAT.md``), in Python.

Decodes the batch the host sends into :class:`Record` objects and encodes
one outcome per record. Plugin code never calls this module directly.
"""

import struct
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from ._record import OPERATIONS, Json, Record

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_OP_CODES = {name: i for i, name in enumerate(OPERATIONS)}
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


class MalformedBatch(Exception):
    """The batch bytes do not follow the encoding (a host/SDK mismatch)."""


def _micros_to_datetime(us):
    return _EPOCH + timedelta(microseconds=us)


def _datetime_to_micros(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    d = dt - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


_NAME_CACHE_MAX = 4096


def decode_batch(buf):
    """Returns the batch's records, in order.

    Field names repeat record after record: their text is looked up by their
    bytes instead of decoded again (a cache bounded at 4096 names), and
    while a record's fields start as the previous record's did (same names,
    text values), each is read with one comparison. Only the bytes decide:
    a shape entry is the exact encoding of a name and the text tag.
    """
    if not isinstance(buf, bytes):
        buf = bytes(buf)
    size = len(buf)
    if size < 5 or buf[0] != 1:
        raise MalformedBatch(
            "batch encoding version %r is not 1" % (buf[0] if size else None)
        )
    u32 = _U32.unpack_from
    (count,) = u32(buf, 1)
    pos = 5
    out = []
    append = out.append
    names = _NAMES
    ops = OPERATIONS
    n_ops = len(ops)
    decoded = Record._decoded
    shape = []
    startswith = buf.startswith
    for _ in range(count):
        if pos + 4 > size:
            raise MalformedBatch("the batch ends before record %d" % len(out))
        (length,) = u32(buf, pos)
        pos += 4
        end = pos + length
        if end > size:
            raise MalformedBatch("record at byte %d runs past the batch end" % pos)
        op = buf[pos]
        if op >= n_ops:
            raise MalformedBatch("unknown operation code %d" % op)
        (n,) = u32(buf, pos + 1)
        pos += 5
        stream = buf[pos : pos + n].decode()
        pos += n
        (n,) = u32(buf, pos)
        pos += 4
        position = buf[pos : pos + n].decode()
        pos += n
        if buf[pos]:
            (event_time,) = _I64.unpack_from(buf, pos + 1)
            pos += 9
        else:
            event_time = None
            pos += 1
        if buf[pos]:
            key, pos = _decode_value(buf, pos)
        else:
            key = None
            pos += 1
        (hcount,) = u32(buf, pos)
        pos += 4
        headers = []
        for _ in range(hcount):
            (n,) = u32(buf, pos)
            pos += 4
            name = buf[pos : pos + n].decode()
            pos += n
            (n,) = u32(buf, pos)
            pos += 4
            headers.append((name, buf[pos : pos + n]))
            pos += n
        (fcount,) = u32(buf, pos)
        pos += 4
        fields = {}
        i = 0
        if len(shape) <= fcount:
            # The previous record's fields, each with its encoded name and
            # a text tag: while the bytes here start the same, one
            # comparison reads the name and the tag.
            for prefix, name, skip in shape:
                if not startswith(prefix, pos):
                    break
                (n,) = u32(buf, pos + skip - 4)
                pos += skip
                fields[name] = buf[pos : pos + n].decode()
                pos += n
                i += 1
        while i < fcount:
            (n,) = u32(buf, pos)
            start = pos
            pos += 4 + n
            raw = buf[start + 4 : pos]
            name = names.get(raw)
            if name is None:
                if len(names) >= _NAME_CACHE_MAX:
                    names.clear()
                name = names[raw] = raw.decode()
            if buf[pos] == 4:
                entry = (buf[start : pos + 1], name, pos + 5 - start)
                if i < len(shape):
                    shape[i] = entry
                elif i == len(shape):
                    shape.append(entry)
                (n,) = u32(buf, pos + 1)
                pos += 5
                fields[name] = buf[pos : pos + n].decode()
                pos += n
            else:
                if i < len(shape):
                    del shape[i:]
                fields[name], pos = _decode_value(buf, pos)
            i += 1
        if len(shape) > fcount:
            del shape[fcount:]
        if pos != end:
            raise MalformedBatch("record length does not match its contents")
        append(decoded(ops[op], stream, position, event_time, key, headers, fields))
    if pos != size:
        raise MalformedBatch("%d bytes trail the last record" % (size - pos))
    return out


_NAMES = {}


def _decode_value(buf, pos):
    """One value at ``pos`` of the batch bytes: ``(value, next position)``."""
    tag = buf[pos]
    pos += 1
    if tag == 4:
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        return buf[pos : pos + n].decode(), pos + n
    if tag == 2:
        return _I64.unpack_from(buf, pos)[0], pos + 8
    if tag == 0:
        return None, pos
    if tag == 3:
        return _F64.unpack_from(buf, pos)[0], pos + 8
    if tag == 1:
        return buf[pos] != 0, pos + 1
    if tag == 5:
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        return buf[pos : pos + n], pos + n
    if tag == 6:
        return _micros_to_datetime(_I64.unpack_from(buf, pos)[0]), pos + 8
    if tag == 7:
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        return Json(buf[pos : pos + n].decode()), pos + n
    raise MalformedBatch("unknown value tag %d" % tag)


def _put_str(out, s):
    b = s.encode("utf-8")
    out += _U32.pack(len(b))
    out += b


def _put_value(out, v, where):
    if v is None:
        out.append(0)
    elif v is True or v is False:
        out.append(1)
        out.append(1 if v else 0)
    elif isinstance(v, str):
        out.append(4)
        _put_str(out, v)
    elif isinstance(v, int):
        if v < _I64_MIN or v > _I64_MAX:
            raise OverflowError("%s: integer %d does not fit in 64 bits" % (where, v))
        out.append(2)
        out += _I64.pack(v)
    elif isinstance(v, float):
        out.append(3)
        out += _F64.pack(v)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        out.append(5)
        out += _U32.pack(len(v))
        out += v
    elif isinstance(v, datetime):
        out.append(6)
        out += _I64.pack(_datetime_to_micros(v))
    elif isinstance(v, Json):
        out.append(7)
        _put_str(out, v.text)
    elif isinstance(v, (dict, list, tuple)):
        out.append(7)
        _put_str(out, Json.of(v).text)
    else:
        raise TypeError(
            "%s: a %s cannot be a Sluice value (use None, bool, int, float, str, "
            "bytes, datetime, dict or list)" % (where, type(v).__name__)
        )


_TAG_LEN = struct.Struct("<BI")
_TAG_I64 = struct.Struct("<Bq")
_NAME_BYTES = {}


def _name_bytes(name):
    """``len:u32 name`` for a field name (cached: names repeat)."""
    b = _NAME_BYTES.get(name)
    if b is None:
        if not isinstance(name, str):
            raise TypeError("a field name must be a str, not a %s" % type(name).__name__)
        if len(_NAME_BYTES) >= _NAME_CACHE_MAX:
            _NAME_BYTES.clear()
        e = name.encode("utf-8")
        b = _NAME_BYTES[name] = _U32.pack(len(e)) + e
    return b


def encode_record(out, rec):
    """Appends ``len:u32 record[len]`` for ``rec``."""
    if not isinstance(rec, Record):
        raise TypeError("emit takes Record objects, got a %s" % type(rec).__name__)
    start = len(out)
    out += b"\0\0\0\0"
    out.append(_OP_CODES[rec._op])
    b = rec._stream.encode()
    out += _U32.pack(len(b))
    out += b
    _put_str(out, rec.position)
    if rec.event_time is None:
        out.append(0)
    else:
        out.append(1)
        out += _I64.pack(rec.event_time)
    if rec._key is None:
        out.append(0)
    else:
        _put_value(out, rec._key, "the record key")
    headers = rec._headers
    out += _U32.pack(len(headers))
    for name, value in headers:
        _put_str(out, name)
        out += _U32.pack(len(value))
        out += value
    fields = rec._fields
    out += _U32.pack(len(fields))
    names = _NAME_BYTES
    tag_len = _TAG_LEN.pack
    for name, value in fields.items():
        out += names.get(name) or _name_bytes(name)
        t = type(value)
        if t is str:
            b = value.encode()
            out += tag_len(4, len(b))
            out += b
        elif value is None:
            out.append(0)
        elif t is int and _I64_MIN <= value <= _I64_MAX:
            out += _TAG_I64.pack(2, value)
        else:
            _put_value(out, value, "field `%s`" % name)
    _U32.pack_into(out, start, len(out) - start - 4)


def encode_batch(records):
    """The batch encoding of ``records`` (a list of :class:`Record`)."""
    out = bytearray()
    out.append(1)
    out += _U32.pack(len(records))
    for r in records:
        encode_record(out, r)
    return bytes(out)


class BatchView(Sequence):
    """The records of a batch as ``write`` receives them: decoded on first
    use (``len`` does not decode), so that a sink which hands the batch to
    the host (``sluice_sdk.jsonio.encode``) never pays for decoding it in
    Python."""

    __slots__ = ("_buf", "_count", "_records")

    def __init__(self, buf):
        if not isinstance(buf, bytes):
            buf = bytes(buf)
        if len(buf) < 5 or buf[0] != 1:
            raise MalformedBatch(
                "batch encoding version %r is not 1" % (buf[0] if buf else None)
            )
        self._buf = buf
        (self._count,) = _U32.unpack_from(buf, 1)
        self._records = None

    def _decode(self):
        if self._records is None:
            self._records = decode_batch(self._buf)
        return self._records

    def __len__(self):
        return self._count

    def __getitem__(self, i):
        return self._decode()[i]

    def __iter__(self):
        return iter(self._decode())

    def _untouched_batch(self):
        """The batch's bytes while no record was changed, else None."""
        if self._records is None:
            return self._buf
        if any(r._changed for r in self._records):
            return None
        return self._buf
