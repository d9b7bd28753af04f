"""The outbox path on the real stack: a row written in a Postgres transaction arrives on the topic
named by its event type, keyed by the partition key, with headers, the bytes untouched."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dev.stack.stack import Stack
from shopstream.domain import event_type
from shopstream.runtime.outbox import add_event
from shopstream.serde import AvroSerde, RegistryClient

CREATED = event_type("ecommerce.order.order.created.v1")


def latest_offsets(bootstrap: str, topic: str) -> list[TopicPartition]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            return []
        return [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in meta.partitions
        ]
    finally:
        consumer.close()


def test_an_outbox_event_reaches_its_topic_with_key_headers_and_untouched_bytes(stack: Stack) -> None:
    settings = stack.settings
    order_id = f"ORDER-{uuid.uuid4().hex[:8]}"
    correlation = f"corr-{uuid.uuid4().hex[:8]}"
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    start = latest_offsets(settings.kafka.bootstrap, CREATED.topic)
    payload: dict[str, Any] = {
        "orderId": order_id,
        "userId": "USER-9",
        "totalAmount": {"amountMinor": 5000, "currency": "USD"},
        "items": [{"productId": "P1", "qty": 2, "unitPrice": {"amountMinor": 2500, "currency": "USD"}}],
    }

    async def write() -> tuple[dict[str, Any], bytes]:
        with RegistryClient(settings.registry.url) as registry:
            serde = AvroSerde(registry)
            conn = await asyncpg.connect(settings.postgres.dsn)
            try:
                async with conn.transaction():
                    record = await add_event(
                        conn,
                        serde,
                        CREATED,
                        payload,
                        producer="order-service",
                        correlation_id=correlation,
                        trace_id=trace_id,
                        traceparent=traceparent,
                    )
                assert await conn.fetchval("SELECT count(*) FROM outbox") == 0  # cleaned up in the same tx
            finally:
                await conn.close()
            return record, serde.encode(CREATED.subject, record)

    written = time.monotonic()
    record, body = asyncio.run(write())

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": f"t-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    if start:
        consumer.assign(start)
    else:
        consumer.subscribe([CREATED.topic])
    found = None
    try:
        deadline = time.monotonic() + 30
        while found is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.key() == order_id.encode():
                found = msg
    finally:
        consumer.close()
    assert found is not None, "the outbox event never reached its topic"
    assert time.monotonic() - written < 30
    assert found.topic() == CREATED.topic
    assert found.value() == body  # Debezium passed the wire-format bytes through untouched
    headers = {k: v.decode() for k, v in found.headers() or []}
    assert headers["eventId"] == record["eventId"]
    assert headers["eventType"] == CREATED.name
    assert headers["correlationId"] == correlation
    assert headers["traceparent"] == traceparent
    with SchemaRegistryClient({"url": settings.registry.url}) as client:
        decoded = AvroDeserializer(client)(found.value(), SerializationContext(CREATED.topic, MessageField.VALUE))
    assert decoded["payload"]["orderId"] == order_id and decoded["correlationId"] == correlation
