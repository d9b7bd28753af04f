"""End to end through the public API, out of the dataflows' projections: a flash sale started
by an admin prices the next order (and stops when ended); a payment shows up in the revenue
window in Redis and on the revenue topic with the payment's correlation id; an order's
reservation shows up in the inventory snapshot."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from dev.stack.stack import Stack
from shopstream.serde import AvroSerde, RegistryClient
from tests.integration.api_client import Storefront
from tests.support import eventually

REVENUE_TOPIC = "ecommerce.analytics.revenue_window.updated.v1"


def running_sales(cache: redis.Redis, product_id: str) -> list[dict[str, Any]]:
    raw = cache.hget(f"flash_price:{product_id}", "sales")
    now = int(time.time() * 1000)
    return [s for s in json.loads(raw or "[]") if s["startsAt"] <= now < s["endsAt"]]


def test_a_flash_sale_prices_the_next_order_until_it_is_ended(shop: Storefront, cache: redis.Redis) -> None:
    product = shop.product(stock=10, amount="25.00")
    ends = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    body = {"productId": product["id"], "salePrice": {"amount": "19.99", "currency": "USD"}, "endsAt": ends}
    r = shop.http.post("/api/v1/flash-sales", headers=shop.auth("admin"), json=body)
    assert r.status_code == 201, r.text
    sale = r.json()
    assert sale["state"] == "RUNNING" and sale["salePrice"]["amountMinor"] == 1999
    assert sale["regularPrice"]["amountMinor"] == 2500
    eventually(lambda: running_sales(cache, product["id"]), what="the sale in the price map")
    assert cache.pttl(f"flash_price:{product['id']}") > 9 * 60 * 1000, "the entry expires with the sale"

    order = shop.order("alice", [(product["id"], 2)])
    assert order.status_code == 201, order.text
    assert order.json()["items"][0]["unitPrice"]["amountMinor"] == 1999
    assert order.json()["total"]["amountMinor"] == 3998

    ended = shop.http.post(f"/api/v1/flash-sales/{sale['id']}/end", headers=shop.auth("admin"))
    assert ended.status_code == 200 and ended.json()["state"] == "ENDED"
    again = shop.http.post(f"/api/v1/flash-sales/{sale['id']}/end", headers=shop.auth("admin"))
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    eventually(lambda: not running_sales(cache, product["id"]), what="the sale gone from the price map")
    regular = shop.order("alice", [(product["id"], 1)])
    assert regular.json()["items"][0]["unitPrice"]["amountMinor"] == 2500


@pytest.mark.parametrize(
    ("who", "body", "status", "field"),
    [
        ("alice", {"salePrice": {"amount": "1.00", "currency": "USD"}}, 403, None),
        ("admin", {"salePrice": {"amount": "30.00", "currency": "USD"}}, 422, "salePrice.amount"),
        ("admin", {"salePrice": {"amount": "1.00", "currency": "EUR"}}, 422, "salePrice.currency"),
        ("admin", {"endsAt": "2020-01-01T00:00:00+00:00"}, 422, "endsAt"),
        ("admin", {"endsAt": "2030-01-01T00:00:00"}, 422, "endsAt"),  # no time zone
        ("admin", {"productId": "P-nope"}, 404, None),
        ("admin", {"discount": 5}, 422, "discount"),
    ],
)
def test_bad_flash_sales_are_refused_with_problem_details(
    shop: Storefront, who: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    product = shop.product(stock=1, amount="25.00")
    sale = {
        "productId": product["id"],
        "salePrice": {"amount": "10.00", "currency": "USD"},
        "endsAt": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        **body,
    }
    r = shop.http.post("/api/v1/flash-sales", headers=shop.auth(who), json=sale)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if field:
        assert field in json.dumps(r.json()), r.json()


def test_a_payment_reaches_the_revenue_window_and_a_reservation_the_inventory_snapshot(
    stack: Stack, shop: Storefront, cache: redis.Redis
) -> None:
    consumer = Consumer({"bootstrap.servers": stack.settings.kafka.bootstrap, "group.id": f"e2e-{uuid.uuid4().hex}"})
    parts = consumer.list_topics(REVENUE_TOPIC, timeout=10).topics[REVENUE_TOPIC].partitions
    consumer.assign(
        [
            TopicPartition(REVENUE_TOPIC, p, consumer.get_watermark_offsets(TopicPartition(REVENUE_TOPIC, p))[1])
            for p in parts
        ]
    )
    registry = RegistryClient(stack.settings.registry.url)
    serde = AvroSerde(registry)

    product = shop.product(stock=6, amount="12.34")
    order = shop.order("bob", [(product["id"], 2)]).json()
    snapshot = eventually(
        lambda: (
            cache.hgetall(f"inventory:{product['id']}").get("reserved") == "2"
            and cache.hgetall(f"inventory:{product['id']}")
        ),
        what="the reservation in the inventory snapshot",
    )
    assert (snapshot["onHand"], snapshot["available"]) == ("6", "4")

    correlation = f"corr-{uuid.uuid4().hex[:8]}"
    paid = shop.http.post(
        f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("bob", **{"Correlation-Id": correlation})
    )
    assert paid.status_code == 200, paid.text
    try:
        deadline = time.monotonic() + 30
        windows: dict[str, dict[str, Any]] = {}
        while len(windows) < 2 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            record = serde.decode(msg.value())[1]
            if record["correlationId"] == correlation:
                windows[record["payload"]["window"]] = record
    finally:
        consumer.close()
        registry.close()
    assert set(windows) == {"MINUTE", "DAY"}, "both windows updated by the payment"
    minute = windows["MINUTE"]["payload"]
    assert minute["revenue"]["currency"] == "USD" and minute["revenue"]["amountMinor"] >= 2468
    assert windows["MINUTE"]["producer"] == "revenue_windows"
    key = f"revenue:1m:USD:{int(minute['windowStart'].timestamp() * 1000)}"
    assert int(eventually(lambda: cache.hget(key, "version"), what=key)) >= minute["version"], "Redis has it too"


def test_order_status_is_written_through_on_each_event_and_goes_once_fulfilled(
    shop: Storefront, cache: redis.Redis
) -> None:
    product = shop.product(stock=2)
    order = shop.order("alice", [(product["id"], 1)]).json()
    key = f"order_status:{order['id']}"
    eventually(lambda: cache.hget(key, "status") == "PENDING", what="PENDING")
    assert cache.hget(key, "userId") == "USER-alice" and cache.pttl(key) == -1
    assert shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice")).status_code == 200
    eventually(lambda: cache.hget(key, "status") == "PAID", what="PAID")
    fulfil = shop.http.post(f"/api/v1/orders/{order['id']}/fulfill", headers=shop.auth("admin"), json={})
    assert fulfil.status_code == 200, fulfil.text
    eventually(lambda: cache.hget(key, "status") == "FULFILLED", what="FULFILLED")
    assert 0 < cache.pttl(key) <= 60_000, "removed a minute after the order finished"


def test_an_order_fails_fast_with_a_503_when_the_price_map_cannot_be_read(stack: Stack, shop: Storefront) -> None:
    """Seed §8: flash prices fail fast, no retry; nothing is reserved, and the same
    Idempotency-Key works once Redis is back."""
    product = shop.product(stock=3)
    key = uuid.uuid4().hex
    stack.down(["redis"])
    try:
        started = time.monotonic()
        r = shop.order("alice", [(product["id"], 1)], key=key)
        elapsed = time.monotonic() - started
    finally:
        stack.up(["redis"])
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/flash-prices-unavailable")
    assert elapsed < 2, f"took {elapsed:.1f}s: not failing fast"
    assert shop.stock(product["id"])["available"] == 3, "nothing reserved"
    again = shop.order("alice", [(product["id"], 1)], key=key)
    assert again.status_code == 201, again.text
