"""The payment adapter against the stack's real gateways: the legacy SOAP one (spyne, in its own
process; told how to behave over its /admin/mode) and the REST one.

The breaker scenarios run the adapter in this process (zeep over HTTP to the gateway processes) with
a clock the test advances, so the 30 s open interval costs nothing. The order scenarios go through
the API; the last of them leaves the API's breaker open (it half-opens by itself on the first payment
after 30 s), so they run in file order and the SOAP-path ones wait out an open breaker first."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pybreaker
import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import REGISTRY

from dev.stack.stack import Stack
from serving_api.http.problems import problem_for
from serving_api.payments import Backoff, LegacySoapGateway, PaymentAdapter, PaymentRefused, circuit_breaker
from serving_api.payments.rest import RestPaymentGateway
from shopstream.domain import Money
from tests.integration.api_client import Storefront
from tests.support import FakeClock, eventually

USD = Money(2500, "USD")
PAID_TOPIC = "ecommerce.order.order.paid.v1"


class Legacy:
    """The legacy gateway's control endpoint."""

    def __init__(self, stack: Stack) -> None:
        api = stack.settings.api
        self.base = f"http://{api.host}:{api.soap_payment_port}"
        self.http = httpx.Client(base_url=self.base, timeout=5)

    def mode(self, mode: str, delay_ms: int = 0, times: int | None = None) -> None:
        r = self.http.post("/admin/mode", json={"mode": mode, "delayMs": delay_ms, "times": times})
        assert r.status_code == 200, r.text

    def requests(self) -> int:
        return int(self.http.get("/admin/mode").json()["requests"])


@pytest.fixture
def legacy(stack: Stack) -> Iterator[Legacy]:
    control = Legacy(stack)
    control.mode("normal")
    yield control
    control.mode("normal")
    control.http.close()


def adapter(stack: Stack, clock: FakeClock, soap_timeout: float = 2.0, soap_port: int | None = None) -> PaymentAdapter:
    api = stack.settings.api
    return PaymentAdapter(
        LegacySoapGateway(f"http://{api.host}:{soap_port or api.soap_payment_port}/soap?wsdl", soap_timeout),
        RestPaymentGateway(f"http://{api.host}:{api.payment_port}"),
        circuit_breaker("soap-legacy", 5, 30.0, 2, clock=clock, exclude=[PaymentRefused]),
        Backoff(5, 0.1, 2.0),
        clock=clock,
        sleep=clock.sleep,
    )


def oid() -> str:
    return f"ORD-T{uuid.uuid4().hex[:12]}"


def test_failing_gateway_retries_opens_the_breaker_falls_back_half_opens_and_closes(
    stack: Stack, legacy: Legacy
) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        a = adapter(stack, clock)
        try:
            assert (await a.capture(oid(), USD)).gateway == "soap-legacy"  # healthy: SOAP answers
            legacy.mode("fail")
            before = legacy.requests()
            out = await a.capture(oid(), USD)
            assert (out.status, out.gateway, out.soap_attempts, out.fallback) == (
                "APPROVED",
                "rest-sim",
                5,
                "soap-exhausted",
            )
            assert legacy.requests() - before == 5 and len(clock.sleeps) == 4  # 5 attempts, 4 backoffs
            assert a.breaker.current_state == pybreaker.STATE_OPEN
            # open: straight to REST, the gateway sees nothing
            out = await a.capture(oid(), USD)
            assert (out.gateway, out.soap_attempts, out.fallback) == ("rest-sim", 0, "circuit-open")
            assert legacy.requests() - before == 5
            legacy.mode("normal")  # the gateway recovers
            clock.now += 29
            assert (await a.capture(oid(), USD)).fallback == "circuit-open"  # not yet
            clock.now += 1
            out = await a.capture(oid(), USD)  # the trial
            assert (out.gateway, out.soap_attempts) == ("soap-legacy", 1)
            assert a.breaker.current_state == pybreaker.STATE_HALF_OPEN
            assert (await a.capture(oid(), USD)).gateway == "soap-legacy"
            assert a.breaker.current_state == pybreaker.STATE_CLOSED
        finally:
            await a.close()

    transitions = {
        (f, t): REGISTRY.get_sample_value("payment_circuit_transitions_total", {"from": f, "to": t}) or 0
        for f, t in [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
    }
    asyncio.run(scenario())
    for (f, t), before in transitions.items():
        assert REGISTRY.get_sample_value("payment_circuit_transitions_total", {"from": f, "to": t}) == before + 1


def test_slow_gateway_times_out_is_retried_and_answers_when_it_catches_up(stack: Stack, legacy: Legacy) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        # a timeout well above a normal answer on a loaded machine, and slow answers well above it
        a = adapter(stack, clock, soap_timeout=1.0)
        try:
            timeouts = REGISTRY.get_sample_value(
                "payment_attempts_total", {"path": "soap-legacy", "outcome": "timeout"}
            )
            legacy.mode("slow", delay_ms=2500, times=2)  # two slow answers, then normal again
            out = await a.capture(oid(), USD)
            assert (out.status, out.gateway, out.soap_attempts, out.fallback) == ("APPROVED", "soap-legacy", 3, None)
            after = REGISTRY.get_sample_value("payment_attempts_total", {"path": "soap-legacy", "outcome": "timeout"})
            assert after == (timeouts or 0) + 2
            assert a.breaker.current_state == pybreaker.STATE_CLOSED and a.breaker.fail_counter == 0
            legacy.mode("slow", delay_ms=2500)  # slow for good: 5 timeouts, then REST
            started = time.monotonic()
            out = await a.capture(oid(), USD)
            assert (out.gateway, out.soap_attempts, out.fallback) == ("rest-sim", 5, "soap-exhausted")
            assert time.monotonic() - started < 5 * 1.0 + 3  # each attempt bounded by the timeout
            assert a.breaker.current_state == pybreaker.STATE_OPEN
        finally:
            await a.close()

    asyncio.run(scenario())


def test_soap_down_and_refusals(stack: Stack, legacy: Legacy) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        down = adapter(stack, clock, soap_port=1)  # nothing listens there: the WSDL cannot even be read
        ok = adapter(stack, clock)
        try:
            out = await down.capture(oid(), USD)
            assert (out.gateway, out.soap_attempts, out.fallback) == ("rest-sim", 5, "soap-exhausted")
            with pytest.raises(PaymentRefused) as refused:  # a Client fault: the request, not the gateway
                await ok.capture(oid(), Money(100, "XYZ"))
            assert problem_for(refused.value).status == 422 and "XYZ" in refused.value.detail
            assert ok.breaker.fail_counter == 0
            legacy.mode("decline")
            out = await ok.capture(oid(), USD)
            assert (out.status, out.gateway, out.fallback) == ("DECLINED", "soap-legacy", None)
        finally:
            await down.close()
            await ok.close()

    asyncio.run(scenario())


# --- through the API -------------------------------------------------------------------------------


def api_metric(shop: Storefront, name: str, labels: str = "") -> float:
    for line in shop.http.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{labels} "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture(scope="module")
def api_circuit_closed(shop: Storefront) -> None:
    """The API's breaker may still be open from a run less than 30 s ago: wait it out once."""
    if api_metric(shop, "payment_circuit_state") == 2:
        time.sleep(31)


def payment_rows(stack: Stack, order_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        conn = await asyncpg.connect(stack.settings.postgres.dsn)
        try:
            payments = await conn.fetch("SELECT * FROM payments WHERE order_id = $1", order_id)
            attempts = await conn.fetch("SELECT * FROM payment_attempts WHERE order_id = $1 ORDER BY id", order_id)
        finally:
            await conn.close()
        return [dict(r) for r in payments], [dict(r) for r in attempts]

    return asyncio.run(read())


def paid_tail(stack: Stack) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.settings.kafka.bootstrap,
            "group.id": f"it-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    meta = consumer.list_topics(PAID_TOPIC, timeout=10).topics[PAID_TOPIC]
    consumer.assign(
        [
            TopicPartition(PAID_TOPIC, p, consumer.get_watermark_offsets(TopicPartition(PAID_TOPIC, p), timeout=10)[1])
            for p in meta.partitions
        ]
    )
    return consumer


def test_an_order_paid_through_soap_emits_order_paid(
    stack: Stack, shop: Storefront, legacy: Legacy, api_circuit_closed: None
) -> None:
    tail = paid_tail(stack)
    try:
        p = shop.product(stock=3)
        order = shop.order("alice", [(p["id"], 1)]).json()
        r = shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice"))
        assert r.status_code == 200 and r.json()["status"] == "PAID", r.text

        def arrived() -> bool:
            msg = tail.poll(0.5)
            return msg is not None and msg.error() is None and msg.key() == order["id"].encode()

        eventually(arrived, what="order.paid on Kafka")
    finally:
        tail.close()
    payments, attempts = payment_rows(stack, order["id"])
    assert [(x["status"], x["gateway"]) for x in payments] == [("APPROVED", "soap-legacy")]
    assert payments[0]["id"].startswith("LEG-")
    assert [(a["outcome"], a["gateway"], a["soap_attempts"], a["fallback"]) for a in attempts] == [
        ("APPROVED", "soap-legacy", 1, None)
    ]


def test_a_soap_decline_keeps_the_order_pending_without_fallback(
    stack: Stack, shop: Storefront, legacy: Legacy, api_circuit_closed: None
) -> None:
    rest_calls = api_metric(shop, "payment_attempts_total", '{outcome="approved",path="rest-sim"}')
    p = shop.product(stock=3, amount="10.13")  # both gateways decline minor units ending in 13
    order = shop.order("alice", [(p["id"], 1)]).json()
    r = shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice"))
    assert r.status_code == 402 and r.headers["content-type"] == "application/problem+json"
    assert r.json() | {"paymentId": None, "instance": None} == {
        "type": "https://shopstream.dev/problems/payment-declined",
        "title": "Payment declined",
        "status": 402,
        "detail": "card declined",
        "instance": None,
        "paymentId": None,
        "gateway": "soap-legacy",
        "fallback": None,
        "orderStatus": "PENDING",
    }
    assert shop.http.get(f"/api/v1/orders/{order['id']}", headers=shop.auth("alice")).json()["status"] == "PENDING"
    payments, attempts = payment_rows(stack, order["id"])
    assert [(x["status"], x["gateway"]) for x in payments] == [("DECLINED", "soap-legacy")]
    assert [(a["outcome"], a["soap_attempts"], a["fallback"]) for a in attempts] == [("DECLINED", 1, None)]
    assert api_metric(shop, "payment_attempts_total", '{outcome="approved",path="rest-sim"}') == rest_calls


def test_a_slow_capture_holds_no_lock_or_connection_and_a_cancel_meanwhile_is_refused(
    stack: Stack, shop: Storefront, legacy: Legacy, api_circuit_closed: None
) -> None:
    p = shop.product(stock=3)
    order = shop.order("alice", [(p["id"], 1)]).json()
    legacy.mode("slow", delay_ms=1500, times=1)  # one slow answer (under the API's 2 s SOAP timeout)
    paid: dict[str, httpx.Response] = {}

    def pay() -> None:
        with httpx.Client(base_url=stack.settings.api.url, timeout=30) as http:
            paid["r"] = http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice"))

    async def during() -> tuple[bool, bool]:
        conn = await asyncpg.connect(stack.settings.postgres.dsn)
        try:
            deadline = time.monotonic() + 10
            while not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM payment_intents WHERE order_id = $1)", order["id"]
            ):
                assert time.monotonic() < deadline, "no payment intent recorded"
                await asyncio.sleep(0.02)
            # the gateway is being called: the order's row is not locked (NOWAIT would raise)
            async with conn.transaction():
                locked = await conn.fetchval("SELECT id FROM orders WHERE id = $1 FOR UPDATE NOWAIT", order["id"])
            still = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM payment_intents WHERE order_id = $1)", order["id"]
            )
            return locked == order["id"], still
        finally:
            await conn.close()

    thread = threading.Thread(target=pay)
    thread.start()
    try:
        free, still_in_flight = asyncio.run(during())
        assert free
        assert still_in_flight, "the capture ended before the checks: make the gateway slower"
        refused = shop.http.post(f"/api/v1/orders/{order['id']}/cancel", headers=shop.auth("alice"))
        assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/payment-in-progress"), refused.text
        again = shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice"))
        assert again.status_code == 409 and again.json()["type"].endswith("/payment-in-progress"), again.text
    finally:
        thread.join(30)
    assert paid["r"].status_code == 200 and paid["r"].json()["status"] == "PAID", paid["r"].text
    payments, attempts = payment_rows(stack, order["id"])
    assert [(x["status"], x["gateway"]) for x in payments] == [("APPROVED", "soap-legacy")]
    assert [a["outcome"] for a in attempts] == ["APPROVED"]

    async def intents() -> int:
        conn = await asyncpg.connect(stack.settings.postgres.dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM payment_intents WHERE order_id = $1", order["id"]))
        finally:
            await conn.close()

    assert asyncio.run(intents()) == 0  # booked: the intent is gone


def test_failing_soap_falls_back_to_rest_and_both_failing_leaves_the_order_pending(
    stack: Stack, shop: Storefront, legacy: Legacy, api_circuit_closed: None
) -> None:
    legacy.mode("fail")
    p = shop.product(stock=5)
    first = shop.order("alice", [(p["id"], 1)]).json()
    r = shop.http.post(f"/api/v1/orders/{first['id']}/pay", headers=shop.auth("alice"))
    assert r.status_code == 200 and r.json()["status"] == "PAID", r.text
    _, attempts = payment_rows(stack, first["id"])
    assert [(a["outcome"], a["gateway"], a["soap_attempts"], a["fallback"]) for a in attempts] == [
        ("APPROVED", "rest-sim", 5, "soap-exhausted")
    ]
    # one order's five failed attempts alone do not open the circuit (fail_max 10)...
    assert api_metric(shop, "payment_circuit_state") == 0
    # ...a second exhausted capture in a row does
    opened = api_metric(shop, "payment_circuit_transitions_total", '{from="closed",to="open"}') or 0
    other = shop.order("alice", [(p["id"], 1)]).json()
    r = shop.http.post(f"/api/v1/orders/{other['id']}/pay", headers=shop.auth("alice"))
    assert r.status_code == 200 and r.json()["status"] == "PAID", r.text
    assert api_metric(shop, "payment_circuit_state") == 2
    assert api_metric(shop, "payment_circuit_transitions_total", '{from="closed",to="open"}') == opened + 1

    # the REST gateway goes down too: the order stays PENDING, the failure is recorded
    second = shop.order("alice", [(p["id"], 1)]).json()
    stack.down(["payment-gateway"])
    try:
        r = shop.http.post(f"/api/v1/orders/{second['id']}/pay", headers=shop.auth("alice"))
    finally:
        stack.up(["payment-gateway"])
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/payment-unavailable") and body["orderStatus"] == "PENDING"
    assert body["fallback"] == "circuit-open" and "REST" in body["detail"]
    assert shop.http.get(f"/api/v1/orders/{second['id']}", headers=shop.auth("alice")).json()["status"] == "PENDING"
    payments, attempts = payment_rows(stack, second["id"])
    assert payments == []
    assert [(a["outcome"], a["gateway"], a["soap_attempts"], a["fallback"]) for a in attempts] == [
        ("FAILED", "rest-sim", 0, "circuit-open")
    ]
    # and it can be paid later, once a gateway answers
    r = eventually(
        lambda: (
            (x := shop.http.post(f"/api/v1/orders/{second['id']}/pay", headers=shop.auth("alice"))).status_code == 200
            and x
        ),
        what="the order paid once the REST gateway is back",
    )
    assert r.json()["status"] == "PAID"
