"""Encode and decode records of our Avro schemas in the Confluent wire format."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
from fastavro.types import Schema as FastavroSchema

from shopstream.serde.errors import SerdeError, UndecodableRecord
from shopstream.serde.registry_client import RegistryClient
from shopstream.serde.wire import header, unframe

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


class AvroSerde:
    """One per process: parsed schemas keyed by id, subject -> id resolved once."""

    def __init__(self, registry: RegistryClient, schemas_dir: Path = SCHEMAS_DIR) -> None:
        self.registry = registry
        self.schemas_dir = schemas_dir
        self._writers: dict[str, tuple[bytes, FastavroSchema]] = {}  # subject -> (header, parsed)
        self._readers: dict[int, FastavroSchema] = {}

    # --- encoding -------------------------------------------------------------------------------
    def use(self, subject: str, schema: str | None = None, register: bool = True) -> int:
        """Choose the writer schema of a subject: the given string, else `schemas/<topic>.avsc`;
        registered (or looked up) once to learn its id."""
        text = schema if schema is not None else self._schema_file(subject)
        if register:
            schema_id = self.registry.register(subject, text)
        else:
            schema_id = int(self.registry.lookup(subject, text)["id"])
        parsed = fastavro.parse_schema(json.loads(text))
        self._writers[subject] = (header(schema_id), parsed)
        self._readers.setdefault(schema_id, parsed)
        return schema_id

    def encode(self, subject: str, record: dict[str, Any]) -> bytes:
        writer = self._writers.get(subject)
        if writer is None:
            self.use(subject)
            writer = self._writers[subject]
        prefix, parsed = writer
        out = io.BytesIO()
        out.write(prefix)
        try:
            fastavro.schemaless_writer(out, parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerdeError(f"record does not fit the {subject} schema: {exc}") from exc
        return out.getvalue()

    def add_reader(self, schema_id: int, schema: str) -> None:
        """Know a schema id without asking the registry (offline decoding, replays from files)."""
        self._readers[schema_id] = fastavro.parse_schema(json.loads(schema))

    # --- decoding -------------------------------------------------------------------------------
    def decode(self, data: bytes | None) -> tuple[int, dict[str, Any]]:
        """(schema id, record); a malformed record raises a SerdeError subclass, never anything else."""
        schema_id, body = unframe(data)
        parsed = self._readers.get(schema_id)
        if parsed is None:
            parsed = fastavro.parse_schema(json.loads(self.registry.schema(schema_id)))
            self._readers[schema_id] = parsed
        stream = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(stream, parsed, None)
        except (EOFError, ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError, OverflowError) as exc:
            raise UndecodableRecord(f"schema id {schema_id}: {type(exc).__name__}: {exc}") from exc
        if stream.tell() != len(body):
            raise UndecodableRecord(f"schema id {schema_id}: {len(body) - stream.tell()} bytes left after the record")
        return schema_id, record  # type: ignore[return-value]

    def _schema_file(self, subject: str) -> str:
        topic = subject.removesuffix("-value")
        path = self.schemas_dir / f"{topic}.avsc"
        if not path.exists():
            raise SerdeError(f"no schema file {path} for subject {subject}")
        return path.read_text()
