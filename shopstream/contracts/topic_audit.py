"""Read a live topic and report every record that does not decode with its registered schema."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from shopstream.serde import AvroSerde, SerdeError
from shopstream.serde.registry_client import RegistryClient, RegistryError


@dataclass(frozen=True)
class BadRecord:
    partition: int
    offset: int
    reason: str


@dataclass
class AuditReport:
    topic: str
    checked: int = 0
    bad: list[BadRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad


def audit_topic(
    bootstrap: str,
    registry: RegistryClient,
    topic: str,
    *,
    from_beginning: bool = False,
    last: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
    timeout: float = 10.0,
) -> AuditReport:
    """Decode every record from the start (or the last `last` of each partition) up to the end as
    of now. A record is bad when its frame, its schema id, or its Avro body is wrong, or when its
    schema is not one registered under the topic's subject `<topic>-value`."""
    serde = AvroSerde(registry)
    subject = f"{topic}-value"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"schema-audit-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # the end of a partition is signalled, so offsets missing at its tail (compaction,
            # transaction markers) cannot keep the audit waiting
            "enable.partition.eof": True,
        }
    )
    report = AuditReport(topic)
    allowed: dict[int, bool] = {}  # schema id -> registered under the subject
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise KafkaException(f"topic {topic} not found")
        ends: dict[int, int] = {}
        assignment = []
        for p in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low if from_beginning else max(low, high - last)))
        total = sum(ends[tp.partition] - tp.offset for tp in assignment)
        if not assignment:
            return report
        consumer.assign(assignment)
        done: set[int] = set()
        while len(done) < len(ends):
            msg = consumer.poll(timeout)
            if msg is None:
                raise KafkaException(f"no record from {topic} within {timeout:.0f}s before its end")
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            partition, offset = msg.partition(), msg.offset()
            if partition in done or offset >= ends[partition]:
                continue  # written after the audit began
            report.checked += 1
            reason = _check(serde, registry, subject, msg.value(), allowed)
            if reason:
                report.bad.append(BadRecord(partition, offset, reason))
            if offset >= ends[partition] - 1:
                done.add(partition)
            if on_progress:
                on_progress(report.checked, total)
    finally:
        consumer.close()
    return report


def _check(
    serde: AvroSerde, registry: RegistryClient, subject: str, value: bytes | None, allowed: dict[int, bool]
) -> str | None:
    try:
        schema_id, _ = serde.decode(value)
    except SerdeError as exc:
        return f"{exc.reason}: {exc}"
    if schema_id not in allowed:
        try:
            versions = registry.versions_of_id(schema_id)
        except RegistryError as exc:
            return f"registry: {exc}"
        allowed[schema_id] = any(v["subject"] == subject for v in versions)
    if not allowed[schema_id]:
        return f"schema id {schema_id} is not registered under subject {subject}"
    return None
