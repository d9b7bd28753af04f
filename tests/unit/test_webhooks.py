"""Partner webhooks without I/O: the signature's laws, the retry schedule as queues, deliveries'
ids and bodies, and what a subscription must look like."""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopstream.domain import Invalid
from webhooks import (
    SEED_SCHEDULE,
    SUBSCRIBABLE,
    Delivery,
    RetrySchedule,
    WebhookDispatcherSettings,
    delay_name,
    delivery_id,
    sign,
    verify,
)
from webhooks.subscriptions import _check

secrets_ = st.text(min_size=1, max_size=64)
bodies = st.binary(max_size=2048)
timestamps = st.integers(min_value=0, max_value=4_000_000_000)


@given(secrets_, timestamps, bodies)
def test_a_signed_body_verifies(secret: str, ts: int, body: bytes) -> None:
    signature = sign(secret, ts, body)
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify(secret, ts, body, signature, now=ts)
    assert verify(secret, str(ts), body, signature, now=ts + 299)


@given(secrets_, timestamps, bodies, st.data())
def test_any_change_of_body_timestamp_or_secret_breaks_the_signature(
    secret: str, ts: int, body: bytes, data: st.DataObject
) -> None:
    signature = sign(secret, ts, body)
    other_body = data.draw(bodies.filter(lambda b: b != body), label="body")
    other_ts = data.draw(timestamps.filter(lambda t: t != ts), label="timestamp")
    other_secret = data.draw(secrets_.filter(lambda s: s != secret), label="secret")
    assert not verify(secret, ts, other_body, signature, now=ts)
    assert sign(secret, other_ts, body) != signature
    assert not verify(secret, other_ts, body, signature, now=other_ts)
    assert not verify(other_secret, ts, body, signature, now=ts)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # a partner computes it with any HMAC library: hex(HMAC-SHA256(secret, "1700000000.{}"))
    expected = "sha256=" + hmac.new(b"k" * 16, b"1700000000.{}", "sha256").hexdigest()
    assert sign("k" * 16, 1_700_000_000, b"{}") == expected


def test_a_replayed_request_outside_the_window_is_refused() -> None:
    signature = sign("secret-0123456789", 1000, b"{}")
    assert verify("secret-0123456789", 1000, b"{}", signature, now=1300)
    assert not verify("secret-0123456789", 1000, b"{}", signature, now=1301)
    assert not verify("secret-0123456789", 1000, b"{}", signature, now=699)
    assert not verify("secret-0123456789", "not-a-number", b"{}", signature, now=1000)


def test_the_default_schedule_is_the_seeds_and_names_its_delay_queues() -> None:
    assert WebhookDispatcherSettings().retry_schedule == SEED_SCHEDULE == (30, 120, 300, 900, 1800)
    schedule = RetrySchedule(SEED_SCHEDULE)
    assert schedule.max_attempts == 6  # the first attempt, then one per wait
    assert schedule.delay_queues == [
        ("webhooks.retry.30s", 30_000),
        ("webhooks.retry.2m", 120_000),
        ("webhooks.retry.5m", 300_000),
        ("webhooks.retry.15m", 900_000),
        ("webhooks.retry.30m", 1_800_000),
    ]
    assert [schedule.after_failure(n) for n in range(1, 7)] == [
        "webhooks.retry.30s",
        "webhooks.retry.2m",
        "webhooks.retry.5m",
        "webhooks.retry.15m",
        "webhooks.retry.30m",
        None,  # the 5th retry failed: the DLQ
    ]
    assert (schedule.work_exchange, schedule.work_queue, schedule.dlq) == (
        "webhooks.work",
        "webhooks.work",
        "webhooks.dlq",
    )
    with pytest.raises(ValueError):
        schedule.after_failure(0)


def test_a_compressed_schedule_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSTREAM_WEBHOOK_DISPATCHER__RETRY_SCHEDULE", "[0.3, 0.6, 0.9, 1.2, 1.5]")
    monkeypatch.setenv("SHOPSTREAM_WEBHOOK_DISPATCHER__QUEUE_PREFIX", "test-hooks")
    settings = WebhookDispatcherSettings()
    schedule = RetrySchedule(settings.retry_schedule, settings.queue_prefix)
    assert schedule.after_failure(1) == "test-hooks.retry.300ms"
    assert schedule.after_failure(5) == "test-hooks.retry.1500ms"
    assert schedule.after_failure(6) is None
    monkeypatch.setenv("SHOPSTREAM_WEBHOOK_DISPATCHER__RETRY_SCHEDULE", "[30, 0]")
    with pytest.raises(ValueError, match="> 0 seconds"):
        WebhookDispatcherSettings()


@pytest.mark.parametrize(
    ("seconds", "name"), [(30, "30s"), (120, "2m"), (90, "90s"), (3600, "1h"), (0.5, "500ms"), (1.25, "1250ms")]
)
def test_delay_names(seconds: float, name: str) -> None:
    assert delay_name(seconds) == name


@given(st.lists(st.sampled_from([0.5, 1, 30, 120, 300]), min_size=1, max_size=8))
def test_every_failure_but_the_last_waits_in_a_declared_delay_queue(waits: list[float]) -> None:
    schedule = RetrySchedule(tuple(waits), "p")
    declared = {name for name, _ in schedule.delay_queues}
    for attempt in range(1, schedule.max_attempts):
        assert schedule.after_failure(attempt) in declared
    assert schedule.after_failure(schedule.max_attempts) is None


def order_created() -> dict[str, object]:
    return {
        "eventId": str(uuid.uuid4()),
        "eventType": "ecommerce.order.order.created.v1",
        "occurredAt": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "producer": "order-service",
        "traceId": "0" * 32,
        "correlationId": "corr-1",
        "schemaVersion": "1.0",
        "partitionKey": "ORD-1",
        "payload": {"orderId": "ORD-1", "total": {"amountMinor": 12950, "currency": "USD"}},
    }


def test_a_delivery_is_the_same_however_often_the_fan_out_reads_its_event() -> None:
    event = order_created()
    first, again = Delivery.of("WHS-a", event), Delivery.of("WHS-a", dict(event))
    assert first == again and first.delivery_id == delivery_id("WHS-a", str(event["eventId"]))
    assert Delivery.of("WHS-b", event).delivery_id != first.delivery_id
    assert Delivery.from_message(first.to_message()) == first
    body = json.loads(first.body)
    assert body["eventType"] == "ecommerce.order.order.created.v1"
    assert body["occurredAt"] == "2026-01-02T03:04:05.678000Z"
    assert body["data"]["total"] == {"amountMinor": 12950, "currency": "USD"}  # money stays integer minor units
    with pytest.raises(ValueError):
        Delivery.from_message(b'{"deliveryId": "x"}')


def test_a_subscription_needs_a_partner_an_http_url_known_event_types_and_a_long_secret() -> None:
    _check("acme", "https://partner.example/hooks", list(SUBSCRIBABLE), None)
    with pytest.raises(Invalid) as caught:
        _check("-bad", "ftp://x", ["ecommerce.inventory.stock.adjusted.v1"], "short")
    names = {p["name"] for p in caught.value.invalid_params}
    assert names == {"partnerId", "url", "eventTypes", "secret"}
    with pytest.raises(Invalid):
        _check("acme", "https://partner.example/hooks", [], None)


@pytest.mark.parametrize(
    ("host", "internal"),
    [("127.0.0.1", True), ("10.1.2.3", True), ("169.254.169.254", True), ("::1", True), ("localhost", True),
     ("192.168.0.7", True), ("224.0.0.1", True), ("8.8.8.8", False), ("2001:4860:4860::8888", False)],
)  # fmt: skip
def test_webhook_targets_on_internal_addresses_are_recognised(host: str, internal: bool) -> None:
    from webhooks.subscriptions import _internal_address

    assert (asyncio.run(_internal_address(host)) is not None) is internal


def test_a_webhook_url_the_client_cannot_send_to_is_invalid() -> None:
    from webhooks.subscriptions import _valid_target

    assert _valid_target("https://partner.example/hooks")
    for url in ("http://example.com:abc/", "ftp://partner.example/", "http://:80/", "not a url"):
        assert not _valid_target(url), url
