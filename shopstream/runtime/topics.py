"""The event topics: one per event type of the catalogue (3 partitions; projections compacted),
made before any consumer subscribes, so that no engine auto-creates one with other partitions."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from shopstream.domain import EVENT_TYPES

PARTITIONS = 3


class TopicsNotCreated(RuntimeError):
    """Kafka refused to make an event topic (not: it existed already)."""


def create_event_topics(bootstrap: str, prefix: str = "") -> str | None:
    """Makes the missing ones; `prefix` names a copy of them (tests, benchmarks). Says what it made."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(
            prefix + e.topic,
            num_partitions=PARTITIONS,
            replication_factor=1,
            config={"cleanup.policy": "compact"} if e.compacted else {},
        )
        for e in EVENT_TYPES
        if prefix + e.topic not in existing
    ]
    if not wanted:
        return None
    for topic, future in admin.create_topics(wanted).items():
        try:
            future.result(timeout=10)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicsNotCreated(f"could not create topic {topic}: {exc}") from exc
    return f"created event topics {', '.join(t.topic for t in wanted)}"
