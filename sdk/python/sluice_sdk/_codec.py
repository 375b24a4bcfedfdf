"""The Sluice batch encoding, version 1 (``codec/FORMAT.md``), in Python.

Decodes the batch the host sends into :class:`Record` objects and encodes
one outcome per record. Plugin code never calls this module directly.
"""

import struct
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


def decode_batch(buf):
    """Returns ``[(record, start, end)]``: each record with its byte span."""
    mv = memoryview(buf)
    if len(mv) < 5 or mv[0] != 1:
        raise MalformedBatch(
            "batch encoding version %r is not 1" % (mv[0] if len(mv) else None)
        )
    (count,) = _U32.unpack_from(mv, 1)
    pos = 5
    out = []
    u32 = _U32.unpack_from
    for _ in range(count):
        (length,) = u32(mv, pos)
        pos += 4
        end = pos + length
        if end > len(mv):
            raise MalformedBatch("record at byte %d runs past the batch end" % pos)
        out.append((_decode_record(mv, pos, end), pos, end))
        pos = end
    if pos != len(mv):
        raise MalformedBatch("%d bytes trail the last record" % (len(mv) - pos))
    return out


def _decode_record(mv, pos, end):
    u32 = _U32.unpack_from
    op = mv[pos]
    pos += 1
    if op >= len(OPERATIONS):
        raise MalformedBatch("unknown operation code %d" % op)
    (n,) = u32(mv, pos)
    pos += 4
    stream = str(mv[pos : pos + n], "utf-8")
    pos += n
    (n,) = u32(mv, pos)
    pos += 4
    position = str(mv[pos : pos + n], "utf-8")
    pos += n
    if mv[pos]:
        (event_time,) = _I64.unpack_from(mv, pos + 1)
        pos += 9
    else:
        event_time = None
        pos += 1
    key, pos = _decode_value(mv, pos)
    (hcount,) = u32(mv, pos)
    pos += 4
    headers = []
    for _ in range(hcount):
        (n,) = u32(mv, pos)
        pos += 4
        name = str(mv[pos : pos + n], "utf-8")
        pos += n
        (n,) = u32(mv, pos)
        pos += 4
        headers.append((name, bytes(mv[pos : pos + n])))
        pos += n
    (fcount,) = u32(mv, pos)
    pos += 4
    fields = {}
    for _ in range(fcount):
        (n,) = u32(mv, pos)
        pos += 4
        name = str(mv[pos : pos + n], "utf-8")
        pos += n
        fields[name], pos = _decode_value(mv, pos)
    if pos != end:
        raise MalformedBatch("record length does not match its contents")
    return Record._decoded(OPERATIONS[op], stream, position, event_time, key, headers, fields)


def _decode_value(mv, pos):
    tag = mv[pos]
    pos += 1
    if tag == 4:
        (n,) = _U32.unpack_from(mv, pos)
        pos += 4
        return str(mv[pos : pos + n], "utf-8"), pos + n
    if tag == 2:
        return _I64.unpack_from(mv, pos)[0], pos + 8
    if tag == 0:
        return None, pos
    if tag == 3:
        return _F64.unpack_from(mv, pos)[0], pos + 8
    if tag == 1:
        return mv[pos] != 0, pos + 1
    if tag == 5:
        (n,) = _U32.unpack_from(mv, pos)
        pos += 4
        return bytes(mv[pos : pos + n]), pos + n
    if tag == 6:
        return _micros_to_datetime(_I64.unpack_from(mv, pos)[0]), pos + 8
    if tag == 7:
        (n,) = _U32.unpack_from(mv, pos)
        pos += 4
        return Json(str(mv[pos : pos + n], "utf-8")), pos + n
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


def encode_record(out, rec):
    """Appends ``len:u32 record[len]`` for ``rec``."""
    if not isinstance(rec, Record):
        raise TypeError("emit takes Record objects, got a %s" % type(rec).__name__)
    start = len(out)
    out += b"\0\0\0\0"
    out.append(_OP_CODES[rec.op])
    _put_str(out, rec.stream)
    _put_str(out, rec.position)
    if rec.event_time is None:
        out.append(0)
    else:
        out.append(1)
        out += _I64.pack(rec.event_time)
    _put_value(out, rec.key, "the record key")
    headers = rec.headers
    out += _U32.pack(len(headers))
    for name, value in headers:
        _put_str(out, name)
        out += _U32.pack(len(value))
        out += value
    fields = rec._fields
    out += _U32.pack(len(fields))
    for name, value in fields.items():
        _put_str(out, name)
        _put_value(out, value, "field `%s`" % name)
    _U32.pack_into(out, start, len(out) - start - 4)
