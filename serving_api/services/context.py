"""What every use case needs to know about the request that triggered it."""

from __future__ import annotations

from dataclasses import dataclass

from shopstream.serde import AvroSerde


@dataclass(frozen=True)
class Context:
    serde: AvroSerde
    producer: str
    correlation_id: str
    trace_id: str
    traceparent: str | None = None
