"""What `shopstream streams status` reports of one dataflow: consumer lag (per input topic,
including its repartition topic), the size of its local state, and its dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.catalog import DataflowSpec
from streams.settings import DataflowSettings


def dataflow_status(spec: DataflowSpec, settings: DataflowSettings) -> dict[str, Any]:
    group = settings.consumer_group or f"shopstream-{spec.name}"
    dlq = settings.dead_letter_topic or f"shopstream.dlq.{spec.name}"
    row: dict[str, Any] = {"dataflow": spec.name, "group": group, "lag": None, "lagByTopic": {}, "deadLetters": None}
    row["stateBytes"] = _folder_size(Path(settings.state_dir) / group)
    try:
        committed = _committed(settings.kafka_bootstrap, group)
        consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group + "-status"})
        try:
            lag: dict[str, int] = {}
            for tp in committed:
                _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)
                behind = high - tp.offset if tp.offset >= 0 else high
                lag[tp.topic] = lag.get(tp.topic, 0) + max(behind, 0)
            row["lagByTopic"] = dict(sorted(lag.items()))
            row["lag"] = sum(lag.values())
            row["deadLetters"] = _records(consumer, dlq)
        finally:
            consumer.close()
    except KafkaException as exc:
        row["error"] = str(exc)
    return row


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
