"""Parse an Avro schema string once; its canonical string identifies it (same string, same id)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import avro.errors
import avro.schema


class InvalidSchema(ValueError):
    """A schema Apache Avro cannot parse; `message` is the parser's reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ParsedSchema:
    canonical: str  # compact JSON as Avro writes it: docs and defaults kept, whitespace gone
    schema: avro.schema.Schema


def parse(schema_str: str) -> ParsedSchema:
    """Parse with Apache Avro; a malformed schema raises `InvalidSchema` with the parser's message."""
    try:
        parsed = avro.schema.parse(schema_str)
    except (avro.errors.AvroException, json.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise InvalidSchema(f"{type(exc).__name__}: {exc}") from exc
    return ParsedSchema(canonical=json.dumps(parsed.to_json(), separators=(",", ":")), schema=parsed)
