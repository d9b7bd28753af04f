"""Encode and decode records of our Avro schemas in the Confluent wire format."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
from fastavro.types import Schema as FastavroSchema

from shopstream.serde.codegen import Decoder, Encoder, Unsupported, compile_schema
from shopstream.serde.errors import SerdeError, UndecodableRecord
from shopstream.serde.registry_client import RegistryClient
from shopstream.serde.wire import header, unframe

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


_ENCODE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError)
_DECODE_ERRORS = (EOFError, ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError, OverflowError)


def _codec(schema: Any, raw: bool = False) -> tuple[Encoder, Decoder]:
    """A compiled codec for the schema, or fastavro's for what the compiler leaves alone (which
    decodes logical types as it always does, also when `raw` asks for epoch ms and uuid text)."""
    try:
        return compile_schema(schema, raw)
    except (Unsupported, RecursionError, KeyError, TypeError, SyntaxError):
        parsed: FastavroSchema = fastavro.parse_schema(schema)

        def encode(record: Any) -> bytes:
            out = io.BytesIO()
            fastavro.schemaless_writer(out, parsed, record)
            return out.getvalue()

        def decode(buf: bytes, pos: int) -> tuple[Any, int]:
            stream = io.BytesIO(memoryview(buf)[pos:])
            record = fastavro.schemaless_reader(stream, parsed, None)
            return record, pos + stream.tell()

        return encode, decode


class AvroSerde:
    """One per process: a codec per schema id, subject -> id resolved once."""

    def __init__(self, registry: RegistryClient, schemas_dir: Path = SCHEMAS_DIR) -> None:
        self.registry = registry
        self.schemas_dir = schemas_dir
        self._writers: dict[str, tuple[bytes, Encoder]] = {}  # subject -> (wire header, encoder)
        self._readers: dict[int, Decoder] = {}
        self._raw_readers: dict[int, Decoder] = {}  # timestamps as epoch ms, uuids as text

    # --- encoding -------------------------------------------------------------------------------
    def use(self, subject: str, schema: str | None = None, register: bool = True) -> int:
        """Choose the writer schema of a subject: the given string, else `schemas/<topic>.avsc`;
        registered (or looked up) once to learn its id."""
        text = schema if schema is not None else self._schema_file(subject)
        if register:
            schema_id = self.registry.register(subject, text)
        else:
            schema_id = int(self.registry.lookup(subject, text)["id"])
        encode, decode = _codec(json.loads(text))
        self._writers[subject] = (header(schema_id), encode)
        self._readers.setdefault(schema_id, decode)
        if schema_id not in self._raw_readers:
            self._raw_readers[schema_id] = _codec(json.loads(text), raw=True)[1]
        return schema_id

    def encode(self, subject: str, record: dict[str, Any]) -> bytes:
        writer = self._writers.get(subject)
        if writer is None:
            self.use(subject)
            writer = self._writers[subject]
        prefix, encode = writer
        try:
            return prefix + encode(record)
        except _ENCODE_ERRORS as exc:
            raise SerdeError(f"record does not fit the {subject} schema: {type(exc).__name__}: {exc}") from exc

    def add_reader(self, schema_id: int, schema: str) -> None:
        """Know a schema id without asking the registry (offline decoding, replays from files)."""
        self._readers[schema_id] = _codec(json.loads(schema))[1]
        self._raw_readers[schema_id] = _codec(json.loads(schema), raw=True)[1]

    # --- decoding -------------------------------------------------------------------------------
    def decode(self, data: bytes | None, raw: bool = False) -> tuple[int, dict[str, Any]]:
        """(schema id, record); a malformed record raises a SerdeError subclass, never anything else.
        `raw`: timestamp-millis fields as epoch milliseconds and uuid fields as their text (checked
        for a UUID's shape), not datetime and UUID values — what typed events take, made faster."""
        schema_id, _ = unframe(data)
        assert data is not None
        readers = self._raw_readers if raw else self._readers
        decode = readers.get(schema_id)
        if decode is None:
            text = self.registry.schema(schema_id)
            try:
                decode = _codec(json.loads(text), raw)[1]
            except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
                raise UndecodableRecord(f"schema id {schema_id} is not a schema we can read: {exc}") from exc
            readers[schema_id] = decode
        try:
            record, end = decode(data, 5)
        except _DECODE_ERRORS as exc:
            raise UndecodableRecord(f"schema id {schema_id}: {type(exc).__name__}: {exc}") from exc
        if end > len(data):
            raise UndecodableRecord(f"schema id {schema_id}: truncated, {end - len(data)} bytes missing")
        if end != len(data):
            raise UndecodableRecord(f"schema id {schema_id}: {len(data) - end} bytes left after the record")
        return schema_id, record

    def _schema_file(self, subject: str) -> str:
        topic = subject.removesuffix("-value")
        path = self.schemas_dir / f"{topic}.avsc"
        if not path.exists():
            raise SerdeError(f"no schema file {path} for subject {subject}")
        return path.read_text()
