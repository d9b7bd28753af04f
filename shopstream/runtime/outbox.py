"""The transactional outbox: an event leaves with the state change that caused it, in the same
Postgres transaction, already encoded in the Confluent Avro wire format (so it is validated against
its registered schema at the source). Debezium's EventRouter takes it from the WAL to Kafka."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from shopstream.domain import EventType, envelope
from shopstream.serde import AvroSerde

INSERT = """
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, correlation_id, traceparent)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
# the insert is what Debezium reads from the WAL; deleting in the same transaction keeps the table empty
DELETE = "DELETE FROM outbox WHERE id = $1"


async def add_event(
    conn: asyncpg.Connection,
    serde: AvroSerde,
    event: EventType,
    payload: dict[str, Any],
    *,
    producer: str,
    correlation_id: str,
    trace_id: str,
    traceparent: str | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """Write one event to the outbox inside the caller's transaction; returns the envelope."""
    if not conn.is_in_transaction():
        raise RuntimeError("outbox events are written inside the state change's transaction")
    record = envelope(
        event, payload, producer=producer, correlation_id=correlation_id, trace_id=trace_id, occurred_at=occurred_at
    )
    body = serde.encode(event.subject, record)
    event_id = uuid.UUID(record["eventId"])
    await conn.execute(
        INSERT, event_id, event.context, record["partitionKey"], event.name, body, correlation_id, traceparent
    )
    await conn.execute(DELETE, event_id)
    return record
