"""End to end: in through the public REST API, out of Kafka as Avro events (decoded with
confluent-kafka's AvroDeserializer via our registry), carrying the request's ids."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dev.stack.stack import Stack
from tests.integration.api_client import Storefront

TOPICS = {
    "created": "ecommerce.order.order.created.v1",
    "paid": "ecommerce.order.order.paid.v1",
    "canceled": "ecommerce.order.order.canceled.v1",
    "adjusted": "ecommerce.inventory.stock.adjusted.v1",
}


class EventTail:
    """Everything written to the order topics from now on, decoded."""

    def __init__(self, stack: Stack) -> None:
        self.registry = SchemaRegistryClient({"url": stack.settings.registry.url})
        self.decode = AvroDeserializer(self.registry)
        self.consumer = Consumer(
            {
                "bootstrap.servers": stack.settings.kafka.bootstrap,
                "group.id": f"e2e-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        assignment = []
        for topic in TOPICS.values():
            meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
            assert meta.partitions, f"topic {topic} does not exist (shopstream up creates it)"
            for p in meta.partitions:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                assignment.append(TopicPartition(topic, p, high))
        self.consumer.assign(assignment)
        self.seen: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    def wait_for(self, topic: str, match: Any, timeout: float = 30) -> tuple[dict[str, Any], dict[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            for t, value, headers in self.seen:
                if t == topic and match(value):
                    return value, headers
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching event on {topic} within {timeout}s")
            msg = self.consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                value = self.decode(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
                self.seen.append((msg.topic(), value, {k: v.decode() for k, v in msg.headers() or []}))

    def close(self) -> None:
        self.consumer.close()
        self.registry.__exit__()


@pytest.fixture
def tail(stack: Stack) -> Iterator[EventTail]:
    t = EventTail(stack)
    yield t
    t.close()


def test_order_created_then_paid_events_carry_the_requests_ids(shop: Storefront, tail: EventTail) -> None:
    p = shop.product(stock=5)
    correlation = f"corr-{uuid.uuid4().hex[:8]}"
    created = shop.order("alice", [(p["id"], 2)], correlation=correlation)
    assert created.status_code == 201
    order_id, trace_id = created.json()["id"], created.headers["Trace-Id"]
    event, headers = tail.wait_for(TOPICS["created"], lambda v: v["payload"]["orderId"] == order_id)
    assert event["correlationId"] == correlation and event["traceId"] == trace_id
    assert event["partitionKey"] == order_id and event["producer"] == "order-service"
    assert event["payload"]["totalAmount"] == {"amountMinor": 5000, "currency": "USD"}
    assert headers["correlationId"] == correlation and headers["traceparent"].split("-")[1] == trace_id

    paid = shop.http.post(
        f"/api/v1/orders/{order_id}/pay", headers=shop.auth("alice", **{"Correlation-Id": correlation})
    )
    assert paid.status_code == 200
    event, _ = tail.wait_for(TOPICS["paid"], lambda v: v["payload"]["orderId"] == order_id)
    assert event["correlationId"] == correlation and event["payload"]["amount"]["amountMinor"] == 5000


def test_cancel_releases_stock_and_emits_canceled(shop: Storefront, tail: EventTail) -> None:
    p = shop.product(stock=5)
    order_id = shop.order("alice", [(p["id"], 3)]).json()["id"]
    tail.wait_for(
        TOPICS["adjusted"], lambda v: v["payload"]["orderId"] == order_id and v["payload"]["reason"] == "RESERVATION"
    )
    r = shop.http.post(f"/api/v1/orders/{order_id}/cancel", headers=shop.auth("alice"), json={"reason": "too slow"})
    assert r.status_code == 200
    canceled, _ = tail.wait_for(TOPICS["canceled"], lambda v: v["payload"]["orderId"] == order_id)
    assert canceled["payload"]["releasedItems"] == [{"productId": p["id"], "qty": 3}]
    assert canceled["payload"]["reason"] == "too slow"
    released, _ = tail.wait_for(
        TOPICS["adjusted"], lambda v: v["payload"]["orderId"] == order_id and v["payload"]["reason"] == "RELEASE"
    )
    assert released["payload"]["delta"] == 3 and released["payload"]["available"] == 5
    assert shop.stock(p["id"])["available"] == 5
