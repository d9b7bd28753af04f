"""Produce to and consume from the real local broker with confluent-kafka."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from dev.stack.stack import Stack


def test_produce_and_consume_keeps_per_key_order(stack: Stack) -> None:
    bootstrap = stack.settings.kafka.bootstrap
    topic = f"test.kafka.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=10)

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    sent = [(f"order-{i % 7}", f"event-{i}") for i in range(300)]
    for key, value in sent:
        producer.produce(topic, key=key.encode(), value=value.encode())
    assert producer.flush(15) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: list[tuple[str, str, int]] = []
    try:
        deadline = time.monotonic() + 60
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received.append((msg.key().decode(), msg.value().decode(), msg.partition()))
    finally:
        consumer.close()

    assert sorted((k, v) for k, v, _ in received) == sorted(sent)
    for key in {k for k, _ in sent}:
        # one key -> one partition, and the partition keeps the order it was produced in
        assert len({p for k, _, p in received if k == key}) == 1
        assert [v for k, v, _ in received if k == key] == [v for k, v in sent if k == key]
    admin.delete_topics([topic])
