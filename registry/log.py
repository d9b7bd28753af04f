"""The registry's durable log: a compacted Kafka topic (`_schemas`), as Confluent's registry and
Karapace keep theirs. Every change is a keyed JSON record; replaying the topic rebuilds the state."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from registry.errors import store_error

Record = tuple[dict[str, Any], dict[str, Any] | None]  # (key, value); value None = tombstone


class KafkaLog:
    def __init__(self, bootstrap: str, topic: str, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout = timeout
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 0}
        )
        self._lock = threading.Lock()

    def ensure_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        topic = NewTopic(
            self.topic,
            num_partitions=1,
            replication_factor=1,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        )
        try:
            admin.create_topics([topic])[self.topic].result(timeout=self.timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def replay(self) -> Iterator[Record]:
        """Every record from the beginning up to the end as of now, in order."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "schema-registry-replay",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,  # the end is signalled even when the last offset is a gap
            }
        )
        try:
            partition = TopicPartition(self.topic, 0)
            _, high = consumer.get_watermark_offsets(partition, timeout=self.timeout)
            if high == 0:
                return
            consumer.assign([TopicPartition(self.topic, 0, 0)])
            while True:
                msg = consumer.poll(self.timeout)
                if msg is None:
                    raise store_error(f"timed out replaying {self.topic}")
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        return
                    raise store_error(str(msg.error()))
                value = msg.value()
                yield json.loads(msg.key()), (json.loads(value) if value is not None else None)
        finally:
            consumer.close()

    def append(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        """Write one record and wait until the broker has it: the change is durable on return."""
        errors: list[KafkaError] = []
        with self._lock:
            self._producer.produce(
                self.topic,
                key=json.dumps(key, sort_keys=True).encode(),
                value=None if value is None else json.dumps(value).encode(),
                on_delivery=lambda err, _msg: errors.append(err) if err else None,
            )
            remaining = self._producer.flush(self.timeout)
            if remaining or errors:
                self._producer.purge()  # nothing of this write may land later, unseen
                self._producer.flush(0)
        if remaining or errors:
            raise store_error(f"write to {self.topic} failed: {errors[0] if errors else 'timed out'}")
