"""What every engine does with an input record before a stage sees it: decode it (Avro, the
registry's schema id), check it is its topic's event type and keyed by its partition key, make the
typed domain event and run the projection's own checks — or say why it is a dead letter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shopstream.domain.typed_events import BadEvent, DomainEvent, from_record
from shopstream.serde import AvroSerde, SerdeError
from streams.core import Item, Position, Projection

DEAD_LETTER_ERRORS = (SerdeError, BadEvent, ValueError, KeyError, TypeError)


class Unreadable(Exception):
    """A record no stage can take; its message is the dead letter's reason
    (`shopstream.runtime.dead_letters`)."""


@dataclass(frozen=True)
class Inputs:
    projection: Projection
    serde: AvroSerde
    topic_prefix: str = ""

    def __post_init__(self) -> None:
        by_topic = {self.topic_prefix + e.topic: e for e in self.projection.inputs}
        object.__setattr__(self, "_by_topic", by_topic)

    @property
    def topics(self) -> list[str]:
        return [self.topic_prefix + e.topic for e in self.projection.inputs]

    def event(self, topic: str, raw: bytes | None, key: bytes | None) -> DomainEvent:
        """The typed event of a record, or Unreadable."""
        expected = self._by_topic[topic]  # type: ignore[attr-defined]
        try:
            _, record = self.serde.decode(raw, raw=True)
            if record["eventType"] != expected.name:
                raise BadEvent(f"a {record['eventType']} record on {topic}")
            if key != record["partitionKey"].encode():
                # per-key state would file it under the wrong entity
                raise BadEvent(f"record key {key!r} is not the event's partition key {record['partitionKey']!r}")
            event = from_record(record)
            self.projection.check(event)
            return event
        except DEAD_LETTER_ERRORS as exc:
            raise Unreadable(f"{type(exc).__name__}: {exc}"[:1000]) from exc

    def item(self, event: DomainEvent, partition: str, offset: int, watermark: int, epoch: int = 0) -> Item[Any]:
        e = event.envelope
        at = Position(partition, offset)
        return Item(e.partition_key, event, at, e.occurred_at, watermark, e.trace_id, e.correlation_id, epoch)
