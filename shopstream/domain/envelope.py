"""The canonical event envelope (domain spec §6) around a payload."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shopstream.domain.events import EventType

SCHEMA_VERSION = "1.0"


def envelope(
    event: EventType,
    payload: dict[str, Any],
    *,
    producer: str,
    correlation_id: str,
    trace_id: str,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The record of one event; its key is the payload's partition key field."""
    key = payload.get(event.partition_key)
    if not isinstance(key, str) or not key:
        raise ValueError(f"{event.name} payload needs its partition key {event.partition_key!r}")
    return {
        "eventId": str(event_id or uuid.uuid4()),
        "eventType": event.name,
        "occurredAt": occurred_at or datetime.now(UTC),
        "producer": producer,
        "traceId": trace_id,
        "correlationId": correlation_id,
        "schemaVersion": SCHEMA_VERSION,
        "partitionKey": key,
        "payload": payload,
    }
