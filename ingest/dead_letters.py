"""The ingest's dead-letter topic: the raw MQTT payload, keyed by SKU (or topic), with the reason
in headers (`dlq.reason`, `dlq.detail`, `dlq.dataflow`, `mqtt.topic`) like the dataflows' DLQs."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)
SOURCE = b"iot_ingest"


class DeadLetterFailed(Exception):
    """The dead letter was not acknowledged by Kafka: keep the message and retry."""


class DeadLetters:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.bootstrap = bootstrap
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5, "client.id": "iot-ingest"}
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="dlq-poll", daemon=True)
        self._poller.start()

    def ensure_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(self.topic, num_partitions=3, replication_factor=1)])
        try:
            futures[self.topic].result(timeout=15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    async def send(self, key: str, payload: bytes, mqtt_topic: str, reason: str, detail: str) -> None:
        """Returns once Kafka has the record; raises DeadLetterFailed otherwise."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[KafkaError | None] = loop.create_future()

        def settle(err: KafkaError | None) -> None:
            if not done.done():
                done.set_result(err)

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            loop.call_soon_threadsafe(settle, err)

        headers = [
            ("dlq.reason", reason.encode()),
            ("dlq.detail", detail.encode()[:1000]),
            ("dlq.dataflow", SOURCE),
            ("mqtt.topic", mqtt_topic.encode()),
        ]
        try:
            self._producer.produce(self.topic, key=key.encode(), value=payload, headers=headers, on_delivery=delivered)
            err = await asyncio.wait_for(done, timeout=30)
        except (BufferError, KafkaException, TimeoutError) as exc:
            raise DeadLetterFailed(f"dead letter to {self.topic}: {exc}") from exc
        if err is not None:
            raise DeadLetterFailed(f"dead letter to {self.topic}: {err}")
        log.warning("dead letter (%s) %s: %s", reason, mqtt_topic, detail)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.2)

    def close(self) -> None:
        self._producer.flush(10)
        self._stop.set()
        self._poller.join(5)
