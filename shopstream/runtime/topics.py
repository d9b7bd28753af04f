"""The event topics: one per event type of the catalogue (3 partitions; projections compacted),
made before any consumer subscribes, so that no engine auto-creates one with other partitions.

The domain event topics keep every record (`retention.ms=-1`): the log is what every projection
is rebuilt from (`shopstream replay`), so it must hold the whole history, not the broker's
default week. Topics made before that are altered to it on the next `up`."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from shopstream.domain import EVENT_TYPES

PARTITIONS = 3
KEEP_FOREVER = {"retention.ms": "-1"}  # the domain topics: the whole history


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
            config={"cleanup.policy": "compact"} if e.compacted else dict(KEEP_FOREVER),
        )
        for e in EVENT_TYPES
        if prefix + e.topic not in existing
    ]
    kept = _keep_forever(
        admin, [prefix + e.topic for e in EVENT_TYPES if not e.compacted and prefix + e.topic in existing]
    )
    if not wanted:
        return kept
    for topic, future in admin.create_topics(wanted).items():
        try:
            future.result(timeout=10)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicsNotCreated(f"could not create topic {topic}: {exc}") from exc
    made = f"created event topics {', '.join(t.topic for t in wanted)}"
    return made if kept is None else f"{made}; {kept}"


def _keep_forever(admin: AdminClient, topics: list[str]) -> str | None:
    """Set `retention.ms=-1` on those of `topics` that hold less; says which."""
    if not topics:
        return None
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics])
    short = []
    for resource, future in described.items():
        entries = future.result(timeout=10)
        if entries.get("retention.ms") is None or entries["retention.ms"].value != "-1":
            short.append(resource.name)
    if not short:
        return None
    changes = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            t,
            incremental_configs=[ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)],
        )
        for t in short
    ]
    for future in admin.incremental_alter_configs(changes).values():
        future.result(timeout=10)
    return f"kept every record of {', '.join(short)} (retention.ms=-1)"
