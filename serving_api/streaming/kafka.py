"""What the push feeds share: a consumer of their own (no group offsets: each API worker reads
everything) assigned at the end of its topics."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition


def tail_consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"push-{uuid.uuid4().hex}",  # never commits: a group id is only required
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )


def assign_ends(consumer: Consumer, topics: list[str]) -> dict[tuple[str, int], int]:
    """Assign every partition of `topics` at its current end; the ends by (topic, partition)."""
    ends, assignment = {}, []
    for topic in topics:
        for p in consumer.list_topics(topic, timeout=5).topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
            ends[(topic, p)] = high
            assignment.append(TopicPartition(topic, p, high))
    consumer.assign(assignment)
    return ends
