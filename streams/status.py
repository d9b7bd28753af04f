"""What `shopstream streams status` reports of one dataflow: its engine, how far behind its
inputs it is, the size of its local state, and its dead letters.

Lag is measured against what the dataflow's Redis sink records as reflected (the positions it
writes with every batch), for either engine; a Quix dataflow's consumer group offsets are used
for the partitions the sink has not recorded (its repartition topics, inputs whose records wrote
nothing yet). A transactional partition ends with a commit marker, which is not a record: a
partition whose only "records" past the position are markers is not behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.catalog import DataflowSpec
from streams.core import parse_partition_name, partition_name
from streams.settings import DataflowSettings


def dataflow_status(spec: DataflowSpec, settings: DataflowSettings) -> dict[str, Any]:
    name = spec.name
    group = settings.group(name)
    row: dict[str, Any] = {
        "dataflow": name,
        "engine": settings.engine,
        "group": group,
        "lag": None,
        "lagByTopic": {},
        "deadLetters": None,
    }
    row["stateBytes"] = _folder_size(Path(settings.state_dir) / group) + _folder_size(settings.recovery_dir(name))
    try:
        positions = _recorded(settings, name)
        if settings.engine == "quix":
            for tp in _committed(settings.kafka.bootstrap, group):
                positions.setdefault(partition_name(tp.topic, tp.partition), max(tp.offset, 0))
        consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "group.id": group + "-status",
                "isolation.level": "read_committed",
            }
        )
        try:
            lag = {settings.topic_prefix + e.topic: 0 for e in spec.inputs}
            for p, offset in positions.items():
                topic, partition = parse_partition_name(p)
                lag[topic] = lag.get(topic, 0) + _behind(consumer, TopicPartition(topic, partition, offset))
            row["lagByTopic"] = dict(sorted(lag.items()))
            row["lag"] = sum(lag.values())
            row["deadLetters"] = _records(consumer, settings.dead_letter(name))
        finally:
            consumer.close()
    except (KafkaException, redis.RedisError) as exc:
        row["error"] = str(exc)
    return row


def _recorded(settings: DataflowSettings, name: str) -> dict[str, int]:
    client = redis.Redis.from_url(settings.redis.url, socket_timeout=5, decode_responses=True)
    try:
        held: dict[str, str] = client.hgetall(settings.progress_key(name))  # type: ignore[assignment]
        return {k: int(v) for k, v in held.items()}
    finally:
        client.close()


def _behind(consumer: Consumer, tp: TopicPartition) -> int:
    """Records from `tp.offset` to the partition's end; a short gap is read to tell records from
    transaction markers."""
    _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)
    gap: int = max(int(high) - int(tp.offset), 0)
    if 0 < gap <= 10:
        consumer.assign([tp])
        records = 0
        for msg in consumer.consume(gap, timeout=1):
            if msg.error() is None:
                records += 1
        consumer.unassign()
        return records
    return gap


def _committed(bootstrap: str, group: str) -> list[TopicPartition]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=5)
    return list(answer[group].result().topic_partitions or [])


def _records(consumer: Consumer, topic: str) -> int:
    metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return 0
    total = 0
    for partition in metadata.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
        total += high - low
    return total


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0
