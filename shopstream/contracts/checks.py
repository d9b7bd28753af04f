"""Static checks of a schema file (no registry needed): it parses, every field and record is
documented, money is never a float, and it matches the event catalogue (§6)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import avro.errors
import avro.schema
import fastavro

from shopstream.contracts.files import SchemaFile
from shopstream.domain import EVENT_TYPES

ENVELOPE = (
    "eventId",
    "eventType",
    "occurredAt",
    "producer",
    "traceId",
    "correlationId",
    "schemaVersion",
    "partitionKey",
    "payload",
)


def static_problems(schema: SchemaFile) -> list[str]:
    """Everything wrong with one file that can be seen without a registry; [] when fine."""
    try:
        doc = json.loads(schema.text)
        avro.schema.parse(schema.text)
        fastavro.parse_schema(doc)
    except (ValueError, avro.errors.AvroException, fastavro.schema.SchemaParseException) as exc:
        return [f"does not parse: {type(exc).__name__}: {exc}"]
    problems = [f"{where}: no doc" for where in _undocumented(doc, doc.get("name", "?"))]
    problems += [
        f"{where}: float/double (money and measures are never floats here)"
        for where in _floats(doc, doc.get("name", "?"))
    ]
    problems += _catalogue_problems(schema, doc)
    return problems


def _catalogue_problems(schema: SchemaFile, doc: dict[str, Any]) -> list[str]:
    known = {e.name: e for e in EVENT_TYPES}
    event = known.get(schema.topic)
    if event is None:
        return [f"{schema.path.name}: not an event type of the catalogue ({', '.join(known)})"]
    problems = []
    if doc.get("namespace") != event.name:
        problems.append(f"namespace {doc.get('namespace')!r} should be the event name {event.name!r}")
    names = [f.get("name") for f in doc.get("fields", [])]
    if names[: len(ENVELOPE)] != list(ENVELOPE):
        problems.append(
            f"envelope fields should be {', '.join(ENVELOPE)} in that order (got {', '.join(map(str, names))})"
        )
    payload = next((f for f in doc.get("fields", []) if f.get("name") == "payload"), None)
    payload_fields = [f.get("name") for f in (payload or {}).get("type", {}).get("fields", [])] if payload else []
    if event.partition_key not in payload_fields:
        problems.append(f"payload lacks the partition key field {event.partition_key!r}")
    return problems


def _undocumented(node: Any, where: str) -> Iterator[str]:
    if isinstance(node, list):  # a union
        for branch in node:
            yield from _undocumented(branch, where)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "enum", "fixed") and not node.get("doc"):
            yield f"{where} ({kind} {node.get('name')})"
        if kind == "record":
            for field in node.get("fields", []):
                path = f"{where}.{field.get('name')}"
                if not field.get("doc"):
                    yield path
                yield from _undocumented(field.get("type"), path)
        elif kind == "array":
            yield from _undocumented(node.get("items"), f"{where}[]")
        elif kind == "map":
            yield from _undocumented(node.get("values"), f"{where}{{}}")


def _floats(node: Any, where: str) -> Iterator[str]:
    if node in ("float", "double"):
        yield where
    elif isinstance(node, list):
        for branch in node:
            yield from _floats(branch, where)
    elif isinstance(node, dict):
        if node.get("type") in ("float", "double"):
            yield where
        for field in node.get("fields", []) if node.get("type") == "record" else []:
            yield from _floats(field.get("type"), f"{where}.{field.get('name')}")
        if node.get("type") == "array":
            yield from _floats(node.get("items"), f"{where}[]")
        if node.get("type") == "map":
            yield from _floats(node.get("values"), f"{where}{{}}")
