"""The canonical event envelope (domain spec §6) around a payload."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shopstream.domain.events import EventType

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


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
        "schemaVersion": event.schema_version,
        "partitionKey": key,
        "payload": payload,
    }


def epoch_ms(value: datetime | int) -> int:
    """Avro timestamp-millis as epoch milliseconds (decoders give a datetime, tests may give ints)."""
    if isinstance(value, int):
        return value
    return (value - EPOCH) // _MS
