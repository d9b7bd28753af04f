"""The projection-topic sink: `Emit` writes as Avro records (the registry's schema id) on their
compacted topics, keyed by the event type's partition key, the newest per key and batch. Record
ids are uuid5 of (topic, key, version), so a replayed batch writes records that readers already
have (the OLAP layer deduplicates by id; compaction keeps the last per key).

It produces through the engine's producer (`produce(topic, key, value)`), so under an engine's
Kafka transaction the records commit with the offsets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from shopstream.serde import AvroSerde
from streams.core import Emit, Write, coalesce

Produce = Callable[[str, bytes, bytes], None]


class TopicSink:
    def __init__(self, serde: AvroSerde, produce: Produce, topic_prefix: str = "") -> None:
        self.serde, self.produce, self.prefix = serde, produce, topic_prefix
        self.written = 0

    def use(self, emits: Sequence[Emit | object]) -> None:
        """Resolve the schema ids of the topics' subjects up front (registering them)."""
        for e in emits:
            if isinstance(e, Emit):
                self.serde.use(e.event.subject)

    def apply(self, writes: Sequence[Write], progress: Mapping[str, int]) -> int:
        n = 0
        for w in coalesce(w for w in writes if isinstance(w, Emit)):
            assert isinstance(w, Emit)
            value = self.serde.encode(w.event.subject, w.record())
            self.produce(self.prefix + w.event.topic, w.key.encode(), value)
            n += 1
        self.written += n
        return n

    def progress(self) -> None:
        """Not a keeper of positions: Kafka keeps what it acknowledged (and under the engine's
        transaction the offsets commit with the records)."""
        return None

    def close(self) -> None:
        pass
