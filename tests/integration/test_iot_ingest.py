"""The IoT stock ingest on the real stack: deltas published by a real MQTT client change the
inventory snapshot in Redis (through the API, the outbox, Debezium, Kafka and the dataflow) by
exactly their sum; a redelivered message is applied once; bad payloads and unknown SKUs reach the
dead-letter topic with their reasons; a broker restart mid-stream loses nothing and doubles
nothing."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from confluent_kafka import Consumer

from dev.simulators.devices import DeviceGateway
from dev.stack.components.iot_ingest import token_file
from dev.stack.stack import Stack
from ingest.payload import topic_for
from ingest.settings import IotIngestSettings
from tests.integration.api_client import Storefront
from tests.support import eventually

DLQ = IotIngestSettings().dead_letter_topic


@pytest.fixture(scope="module")
def devices(stack: Stack) -> Iterator[DeviceGateway]:
    gateway = DeviceGateway(stack.settings.mosquitto.host, stack.settings.mosquitto.port)
    yield gateway
    gateway.close()


def ingest_state() -> dict[str, Any]:
    return httpx.get(IotIngestSettings().url + "/health", timeout=5).json()  # type: ignore[no-any-return]


def snapshot_on_hand(cache: redis.Redis, product_id: str) -> int | None:
    value = cache.hget(f"inventory:{product_id}", "onHand")
    return None if value is None else int(value)


def test_deltas_from_an_mqtt_client_change_the_snapshot_by_their_sum(
    shop: Storefront, cache: redis.Redis, devices: DeviceGateway
) -> None:
    product = shop.product(stock=100)
    deltas = [-2, -1, 5, -3, 10, -4, -1]
    for delta in deltas:
        devices.publish(product["sku"], delta, "RESTOCK" if delta > 0 else "SENSOR", device="shelf-1")
    assert devices.wait_acknowledged(30)
    expected = 100 + sum(deltas)
    eventually(lambda: snapshot_on_hand(cache, product["id"]) == expected, 60, f"inventory:{product['id']} {expected}")
    assert shop.stock(product["id"])["onHand"] == expected


def test_the_ingests_own_credential_adjusts_stock_and_nothing_else(stack: Stack, shop: Storefront) -> None:
    """The stack gives the ingest a token file of role STOCK_KEEPER (not a token minted from the
    API's secret by the ingest itself): it may adjust stock, and the policy refuses it the rest."""
    path = token_file(stack.paths)
    assert path.stat().st_mode & 0o077 == 0, "only its owner reads the credential"
    ingest = {"Authorization": f"Bearer {path.read_text().strip()}"}
    product = shop.product(stock=5)
    adjust = {"delta": 2, "reason": "RESTOCK"}
    headers = {**ingest, "Idempotency-Key": uuid.uuid4().hex}
    r = shop.http.post(f"/api/v1/products/{product['id']}/stock/adjustments", headers=headers, json=adjust)
    assert r.status_code == 200, r.text
    body = {
        "sku": f"SKU-{uuid.uuid4().hex[:10]}",
        "name": "x",
        "price": {"amount": "1.00", "currency": "USD"},
        "stock": 1,
    }
    assert shop.http.post("/api/v1/products", headers=ingest, json=body).status_code == 403
    assert shop.http.get("/api/v1/webhooks/subscriptions", headers=ingest).status_code == 403


def test_a_redelivered_message_is_applied_once(shop: Storefront, devices: DeviceGateway) -> None:
    product = shop.product(stock=20)
    replayed = ingest_state()["replayed"]
    once = b'{"delta": -3, "reason": "SENSOR", "deviceId": "dup-%s", "seq": 1}' % uuid.uuid4().hex[:8].encode()
    for _ in range(3):  # what a QoS 1 device does when its PUBACK is lost
        devices.publish_raw(topic_for(product["sku"]), once)
    assert devices.wait_acknowledged(30)
    eventually(lambda: ingest_state()["replayed"] >= replayed + 2, 30, "two replays")
    assert shop.stock(product["id"])["onHand"] == 17


def test_the_adjustment_endpoint_applies_one_idempotency_key_once(shop: Storefront) -> None:
    product = shop.product(stock=10)
    path = f"/api/v1/products/{product['id']}/stock/adjustments"
    headers = shop.auth("admin", **{"Idempotency-Key": uuid.uuid4().hex})
    first = shop.http.post(path, headers=headers, json={"delta": 4, "reason": "RESTOCK"})
    again = shop.http.post(path, headers=headers, json={"delta": 4, "reason": "RESTOCK"})
    other = shop.http.post(path, headers=headers, json={"delta": 5, "reason": "RESTOCK"})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert other.status_code == 422
    assert shop.stock(product["id"])["onHand"] == 14


def dead_letters(bootstrap: str, want: dict[str, set[str]], timeout: float = 60) -> dict[str, set[str]]:
    """mqtt topic -> the dead-letter reasons seen for it, once they include the wanted ones."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([DLQ])
    seen: dict[str, set[str]] = {}
    deadline = time.monotonic() + timeout
    try:
        while any(not reasons <= seen.get(topic, set()) for topic, reasons in want.items()):
            assert time.monotonic() < deadline, f"dead letters seen: {seen}"
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            headers = {k: (v or b"").decode() for k, v in msg.headers() or []}
            if headers.get("mqtt.topic") in want:
                assert headers["dlq.dataflow"] == "iot_ingest" and headers["dlq.detail"]
                seen.setdefault(headers["mqtt.topic"], set()).add(headers["dlq.reason"])
    finally:
        consumer.close()
    return seen


def test_bad_payloads_and_unknown_skus_are_dead_lettered_with_their_reason(
    stack: Stack, shop: Storefront, devices: DeviceGateway
) -> None:
    before = ingest_state()["deadLetters"]
    product = shop.product(stock=5)
    bad = topic_for(product["sku"])
    unknown = topic_for(f"NO-SUCH-{uuid.uuid4().hex[:8]}")
    devices.publish_raw(bad, b'{"delta": "minus two"}')
    devices.publish_raw(unknown, b'{"delta": -2, "reason": "SENSOR"}')
    devices.publish(product["sku"], -99)  # below what exists: the writers refuse it
    assert devices.wait_acknowledged(30)
    seen = dead_letters(stack.settings.kafka.bootstrap, {bad: {"bad-delta", "rejected"}, unknown: {"unknown-sku"}})
    assert seen == {bad: {"bad-delta", "rejected"}, unknown: {"unknown-sku"}}
    after = ingest_state()["deadLetters"]
    for reason in ("bad-delta", "unknown-sku", "rejected"):
        assert after.get(reason, 0) >= before.get(reason, 0) + 1
    assert shop.stock(product["id"])["onHand"] == 5


def test_a_broker_restart_mid_stream_loses_nothing_and_doubles_nothing(
    stack: Stack, shop: Storefront, cache: redis.Redis, devices: DeviceGateway
) -> None:
    products = [shop.product(stock=1000) for _ in range(3)]
    sums = {p["id"]: 0 for p in products}
    total, done = 600, threading.Event()

    def publish() -> None:
        for i in range(total):
            p = products[i % len(products)]
            delta = -1 if i % 4 else 3
            devices.publish(p["sku"], delta, "SENSOR" if delta < 0 else "RESTOCK", device=f"shelf-{i % 5}")
            sums[p["id"]] += delta
            time.sleep(0.01)
        done.set()

    publisher = threading.Thread(target=publish)
    publisher.start()
    time.sleep(1.5)  # mid-stream: some applied, some in flight, more to come
    stack.down(["mosquitto"])
    time.sleep(2)  # the devices keep publishing into their own buffer meanwhile
    stack.up(["mosquitto"])
    publisher.join(60)
    assert done.is_set()
    assert devices.wait_acknowledged(60), f"{devices.unacknowledged} not acknowledged by the broker"
    expected = {p["id"]: 1000 + sums[p["id"]] for p in products}
    eventually(lambda: {i: shop.stock(i)["onHand"] for i in expected} == expected, 90, f"on hand {expected}")
    eventually(lambda: {i: snapshot_on_hand(cache, i) for i in expected} == expected, 60, f"snapshots {expected}")
    eventually(
        lambda: ingest_state()["connected"] and ingest_state()["buffered"] == 0,
        60,
        lambda: f"the ingest drained; its /health: {ingest_state()}",  # the session, the lanes, the retries
    )
    time.sleep(2)  # nothing late arrives to double anything
    assert {i: shop.stock(i)["onHand"] for i in expected} == expected
