"""The Confluent wire format: [0x00][schema id: 4 bytes big-endian][Avro binary body]."""

from __future__ import annotations

import struct

from shopstream.serde.errors import BadMagicByte, TruncatedRecord

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


def frame(schema_id: int, body: bytes) -> bytes:
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def header(schema_id: int) -> bytes:
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def unframe(data: bytes | None) -> tuple[int, memoryview]:
    """Split a record into (schema id, Avro body); a malformed frame is a typed error."""
    if data is None or len(data) < _HEADER.size:
        raise TruncatedRecord(f"{0 if data is None else len(data)} bytes, shorter than the 5-byte header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise BadMagicByte(f"magic byte {magic}, expected {MAGIC_BYTE}")
    return schema_id, memoryview(data)[_HEADER.size :]
