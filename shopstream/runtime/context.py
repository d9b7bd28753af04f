"""What every use case needs to know about the request that triggered it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shopstream.domain import EventType
from shopstream.runtime.outbox import add_event
from shopstream.serde import AvroSerde


@dataclass(frozen=True)
class Context:
    serde: AvroSerde
    producer: str
    correlation_id: str
    trace_id: str
    traceparent: str | None = None

    async def publish(
        self,
        conn: asyncpg.Connection,
        event: EventType,
        payload: dict[str, Any],
        producer: str | None = None,
        occurred_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Write `event` to the outbox in the caller's transaction, with this request's ids
        (`occurred_at`: when the change happened as the database recorded it; default now)."""
        return await add_event(
            conn,
            self.serde,
            event,
            payload,
            producer=producer or self.producer,
            correlation_id=self.correlation_id,
            trace_id=self.trace_id,
            traceparent=self.traceparent,
            occurred_at=occurred_at,
        )
