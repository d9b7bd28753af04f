"""Partner webhooks on the real stack: subscriptions through the REST API (ADMIN), a real local
HTTP receiver that checks every POST's signature and replay window, the stack's fan-out and
dispatcher delivering an order's event (also across `shopstream down/up webhook-dispatcher`);
then processes of the test's own, on topics and queues of their own with a compressed retry
schedule: a failing receiver gets the first attempt and 5 retries at the schedule's waits, then
the delivery is in the DLQ and webhook.delivery.failed is on Kafka; and a dispatcher restarted
mid-schedule loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
from confluent_kafka import Consumer, Producer

from dev.stack.stack import Stack
from shopstream.domain import envelope, event_type
from shopstream.runtime.topics import create_event_topics
from shopstream.serde import AvroSerde, RegistryClient
from tests.integration.api_client import Storefront
from tests.support import eventually
from webhooks import RetrySchedule, delivery_id, verify

PYTHON = sys.executable
PAID = event_type("ecommerce.order.order.paid.v1")
CREATED = event_type("ecommerce.order.order.created.v1")
FAILED = event_type("ecommerce.webhook.delivery.failed.v1")
SCHEDULE = (0.4, 0.8, 1.2, 1.6, 2.0)  # compressed: the seed's is 30 s, 2 m, 5 m, 15 m, 30 m
SUBSCRIPTIONS = "/api/v1/webhooks/subscriptions"


# --- the partner's side -------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    valid: bool

    @property
    def delivery(self) -> str:
        return self.headers["x-bv-delivery-id"]


@dataclass
class Receiver:
    """A partner's endpoints: /<name> answers as `behaviour[name](X-BV-Attempt)`, after checking
    the signature with `secrets[name]` and the timestamp (5 minutes' window)."""

    secrets: dict[str, str] = field(default_factory=dict)
    behaviour: dict[str, Callable[[int], int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def posts(self, name: str, delivery: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == name and delivery in (None, r.delivery)]

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        name = path.strip("/")
        secret = self.secrets.get(name, "")
        valid = verify(
            secret, headers.get("x-bv-timestamp", ""), body, headers.get("x-bv-signature", ""), now=time.time()
        )
        with self.lock:
            self.received.append(Received(name, headers, body, time.monotonic(), valid))
        if not valid:
            return 401  # a forged or replayed request
        return self.behaviour.get(name, lambda n: 200)(int(headers.get("x-bv-attempt", "1")))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    partner = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:
                # the sender died mid-request (the kill -9 below): a broken connection, not a POST
                # (an HTTP server never hands a partner's code a truncated body)
                self.close_connection = True
                return
            status = partner.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    partner.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield partner
    server.shutdown()
    server.server_close()


def subscribe(shop: Storefront, receiver: Receiver, name: str, events: list[str]) -> str:
    r = shop.http.post(
        SUBSCRIPTIONS,
        headers=shop.auth("admin"),
        json={"partnerId": "test-partner", "url": receiver.url(name), "eventTypes": events},
    )
    assert r.status_code == 201, r.text
    receiver.secrets[name] = r.json()["secret"]
    return str(r.json()["id"])


def unsubscribe(shop: Storefront, subscription: str) -> None:
    assert shop.http.delete(f"{SUBSCRIPTIONS}/{subscription}", headers=shop.auth("admin")).status_code == 204


# --- Postgres, Kafka, RabbitMQ ------------------------------------------------------------------
def attempts(stack: Stack, delivery: str) -> list[tuple[int, str, int | None]]:
    async def query() -> list[tuple[int, str, int | None]]:
        conn = await asyncpg.connect(stack.settings.postgres.dsn)
        try:
            rows = await conn.fetch(
                "SELECT attempt, outcome, status_code FROM webhook_delivery_attempts WHERE delivery_id = $1 "
                "ORDER BY attempt, id",
                uuid.UUID(delivery),
            )
        finally:
            await conn.close()
        return [(r["attempt"], r["outcome"], r["status_code"]) for r in rows]

    return asyncio.run(query())


def drain_queue(stack: Stack, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    async def drain() -> list[aio_pika.abc.AbstractIncomingMessage]:
        connection = await aio_pika.connect(stack.settings.rabbitmq.url)
        out = []
        async with connection:
            channel = await connection.channel()
            q = await channel.get_queue(queue)
            while (message := await q.get(fail=False)) is not None:
                await message.ack()
                out.append(message)
        return out

    return asyncio.run(drain())


def delete_queues(stack: Stack, schedule: RetrySchedule) -> None:
    async def delete() -> None:
        connection = await aio_pika.connect(stack.settings.rabbitmq.url)
        async with connection:
            channel = await connection.channel()
            for name in [schedule.work_queue, schedule.dlq, *(q for q, _ in schedule.delay_queues)]:
                await channel.queue_delete(name)
            await channel.exchange_delete(schedule.work_exchange)

    asyncio.run(delete())


def failed_events(stack: Stack, serde: AvroSerde, deliveries: set[str], timeout: float = 60) -> list[dict[str, Any]]:
    """The webhook.delivery.failed events of `deliveries`, read from the start of the topic."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.settings.kafka.bootstrap,
            "group.id": f"test-webhooks-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([FAILED.topic])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while {e["payload"]["deliveryId"] for e in found} != deliveries and time.monotonic() < deadline:
            for rec in consumer.consume(100, 0.5):
                if rec.error() is None:
                    event = serde.decode(rec.value())[1]
                    if event["payload"]["deliveryId"] in deliveries:
                        found.append(event)
        # anything more (a duplicate) would have arrived by now
        for rec in consumer.consume(100, 2):
            if rec.error() is None and serde.decode(rec.value())[1]["payload"]["deliveryId"] in deliveries:
                found.append(serde.decode(rec.value())[1])
    finally:
        consumer.close()
    return found


@pytest.fixture(scope="module")
def serde(stack: Stack) -> Iterator[AvroSerde]:
    registry = RegistryClient(stack.settings.registry.url)
    yield AvroSerde(registry)
    registry.close()


# --- the stack's own processes ------------------------------------------------------------------
def test_subscriptions_are_admin_only_and_show_their_secret_once(shop: Storefront, receiver: Receiver) -> None:
    body = {"partnerId": "acme", "url": receiver.url("acme"), "eventTypes": [CREATED.name]}
    refused = shop.http.post(SUBSCRIPTIONS, headers=shop.auth("alice"), json=body)
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    assert shop.http.post(SUBSCRIPTIONS, json=body).status_code == 401
    bad = shop.http.post(SUBSCRIPTIONS, headers=shop.auth("admin"), json={**body, "eventTypes": ["nope"]})
    assert bad.status_code == 422 and bad.json()["invalid_params"][0]["name"] == "eventTypes"
    created = shop.http.post(SUBSCRIPTIONS, headers=shop.auth("admin"), json=body)
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["secret"].startswith("whsec_") and created.headers["location"].endswith(sub["id"])
    shown = shop.http.get(f"{SUBSCRIPTIONS}/{sub['id']}", headers=shop.auth("admin")).json()
    assert "secret" not in shown and shown["eventTypes"] == [CREATED.name] and shown["active"]
    listed = shop.http.get(SUBSCRIPTIONS, params={"partnerId": "acme"}, headers=shop.auth("admin")).json()
    assert sub["id"] in [s["id"] for s in listed["items"]] and all("secret" not in s for s in listed["items"])
    assert shop.http.get(SUBSCRIPTIONS, headers=shop.auth("bob")).status_code == 403
    unsubscribe(shop, sub["id"])
    listed = shop.http.get(SUBSCRIPTIONS, params={"partnerId": "acme"}, headers=shop.auth("admin")).json()
    assert sub["id"] not in [s["id"] for s in listed["items"]]
    missing = shop.http.delete(f"{SUBSCRIPTIONS}/WHS-nope", headers=shop.auth("admin"))
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_an_order_reaches_the_partner_signed_also_across_a_dispatcher_restart(
    stack: Stack, shop: Storefront, receiver: Receiver
) -> None:
    subscription = subscribe(shop, receiver, "orders", [CREATED.name])
    product = shop.product(stock=10)
    try:
        first = shop.order("alice", [(product["id"], 1)])
        assert first.status_code == 201, first.text

        def delivered(order_id: str) -> list[Received]:
            return [r for r in receiver.posts("orders") if json.loads(r.body)["data"]["orderId"] == order_id]

        post = eventually(lambda: delivered(first.json()["id"]), 60, "the order.created webhook")[0]
        assert post.valid and post.headers["x-bv-signature"].startswith("sha256=")
        assert post.headers["x-bv-event-type"] == CREATED.name and post.headers["x-bv-attempt"] == "1"
        event = json.loads(post.body)
        assert post.delivery == delivery_id(subscription, event["eventId"])
        assert abs(int(post.headers["x-bv-timestamp"]) - time.time()) < 60
        # a replay of the same request later (or a tampered body) no longer verifies
        secret = receiver.secrets["orders"]
        timestamp = post.headers["x-bv-timestamp"]
        assert not verify(secret, timestamp, post.body, post.headers["x-bv-signature"], now=time.time() + 301)
        assert not verify(secret, timestamp, post.body + b" ", post.headers["x-bv-signature"], now=time.time())

        # the stack's dispatcher down: the delivery waits in RabbitMQ, and arrives once it is back
        stack.down(["webhook-dispatcher"])
        second = shop.order("alice", [(product["id"], 1)])
        assert second.status_code == 201, second.text
        time.sleep(3)
        assert not delivered(second.json()["id"])
        stack.up(["webhook-dispatcher"])
        post = eventually(lambda: delivered(second.json()["id"]), 60, "the webhook queued while down")[0]
        assert post.valid
        history = shop.http.get(f"{SUBSCRIPTIONS}/{subscription}/attempts", headers=shop.auth("admin")).json()
        outcomes = {(a["deliveryId"], a["attempt"], a["outcome"]) for a in history["items"]}
        assert (post.delivery, 1, "DELIVERED") in outcomes
    finally:
        stack.up(["webhook-dispatcher"])
        unsubscribe(shop, subscription)


# --- processes of the test's own: compressed schedule, own topics and queues --------------------
class Webhooks:
    """A fan-out and a dispatcher of the test's own, on topics `<prefix>.<event type>` and queues
    `<prefix>.*`, with the compressed schedule."""

    def __init__(self, stack: Stack, tmp: Path) -> None:
        self.prefix = f"test-wh-{uuid.uuid4().hex[:8]}"
        self.schedule = RetrySchedule(SCHEDULE, self.prefix)
        own = {
            "POSTGRES__DSN": stack.settings.postgres.dsn,
            "KAFKA__BOOTSTRAP": stack.settings.kafka.bootstrap,
            "REGISTRY__URL": stack.settings.registry.url,
            "RABBITMQ__URL": stack.settings.rabbitmq.url,
            "RETRY_SCHEDULE": json.dumps(SCHEDULE),
            "QUEUE_PREFIX": self.prefix,
            "TOPIC_PREFIX": self.prefix + ".",
            "CONSUMER_GROUP": self.prefix,
            "METRICS__PORT": "0",
            "REQUEST_TIMEOUT": "2",
        }
        self.env = {
            **os.environ,
            **{
                p + k: v
                for p in ("SHOPSTREAM_WEBHOOK_FANOUT__", "SHOPSTREAM_WEBHOOK_DISPATCHER__")
                for k, v in own.items()
            },
        }
        self.tmp = tmp
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        create_event_topics(stack.settings.kafka.bootstrap, self.prefix + ".")
        self.producer = Producer({"bootstrap.servers": stack.settings.kafka.bootstrap, "enable.idempotence": True})

    def start(self, which: str) -> None:
        with (self.tmp / f"{which}.log").open("a") as log:
            argv = [PYTHON, "-m", f"webhooks.{which}"]
            self.processes[which] = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)

    def stop(self, which: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(which)
        if process.poll() is None:
            os.kill(process.pid, sig)
            process.wait(30)

    def stop_all(self) -> None:
        for which in list(self.processes):
            self.stop(which)

    def paid(self, serde: AvroSerde) -> str:
        """An order.paid event on the test's topic; its event id."""
        order = f"ORD-{uuid.uuid4().hex[:10]}"
        payload = {
            "orderId": order,
            "userId": "USER-partner-test",
            "paymentId": f"PAY-{order}",
            "amount": {"amountMinor": 4200, "currency": "EUR"},
            "paidAt": datetime.now(UTC),
        }
        record = envelope(PAID, payload, producer="test", correlation_id="test-webhooks", trace_id=uuid.uuid4().hex)
        self.producer.produce(self.prefix + "." + PAID.topic, key=order, value=serde.encode(PAID.subject, record))
        assert self.producer.flush(10) == 0
        return str(record["eventId"])


@pytest.fixture
def own(stack: Stack, tmp_path: Path) -> Iterator[Webhooks]:
    hooks = Webhooks(stack, tmp_path)
    yield hooks
    hooks.stop_all()
    delete_queues(stack, hooks.schedule)


def gaps(posts: list[Received]) -> list[float]:
    return [b.at - a.at for a, b in zip(posts, posts[1:], strict=False)]


def test_a_failing_receiver_gets_the_schedule_then_the_dlq_and_a_failed_event(
    stack: Stack, shop: Storefront, receiver: Receiver, serde: AvroSerde, own: Webhooks
) -> None:
    receiver.behaviour["down"] = lambda n: 503
    subscription = subscribe(shop, receiver, "down", [PAID.name])
    own.start("dispatcher")
    own.start("fanout")
    try:
        delivery = delivery_id(subscription, own.paid(serde))
        posts = eventually(lambda: (p := receiver.posts("down", delivery)) and len(p) >= 6 and p, 60, "6 attempts")
        assert all(p.valid for p in posts)
        assert [p.headers["x-bv-attempt"] for p in posts] == ["1", "2", "3", "4", "5", "6"]
        for waited, wait in zip(gaps(posts), SCHEDULE, strict=True):
            assert wait * 0.9 <= waited <= wait + 1.5, (gaps(posts), SCHEDULE)
        rows = eventually(lambda: (a := attempts(stack, delivery)) and a[-1][1] == "DEAD" and a, 30, "DEAD")
        assert rows == [(n, "RETRY", 503) for n in range(1, 6)] + [(6, "DEAD", 503)]
        dead = eventually(lambda: drain_queue(stack, own.schedule.dlq), 30, "the DLQ message")
        assert [m.message_id for m in dead] == [delivery] and dict(dead[0].headers)["x-attempt"] == 6
        events = failed_events(stack, serde, {delivery})
        assert len(events) == 1
        failed = events[0]["payload"]
        assert failed["subscriptionId"] == subscription and failed["attempts"] == 6
        assert failed["lastStatusCode"] == 503 and failed["targetUrl"] == receiver.url("down")
        time.sleep(1)
        assert len(receiver.posts("down", delivery)) == 6, "nothing after the DLQ"
    finally:
        unsubscribe(shop, subscription)


def test_a_dispatcher_restarted_mid_schedule_loses_nothing(
    stack: Stack, shop: Storefront, receiver: Receiver, serde: AvroSerde, own: Webhooks
) -> None:
    receiver.behaviour["flaky"] = lambda n: 200 if n >= 4 else 500  # the 3rd retry gets through
    receiver.behaviour["gone"] = lambda n: 410
    flaky = subscribe(shop, receiver, "flaky", [PAID.name])
    gone = subscribe(shop, receiver, "gone", [PAID.name])
    own.start("dispatcher")
    own.start("fanout")
    try:
        events = [own.paid(serde) for _ in range(5)]
        expected = {delivery_id(s, e): s for s in (flaky, gone) for e in events}
        # every delivery has failed once or twice: stop the dispatcher in the middle of the schedule
        eventually(lambda: all(len(receiver.posts("gone", d)) >= 2 for d, s in expected.items() if s == gone), 30)
        own.stop("dispatcher")
        time.sleep(2.5)  # the waits expire meanwhile: deliveries pile up in the work queue
        own.start("dispatcher")
        eventually(lambda: sum(len(receiver.posts("flaky", d)) for d in expected) >= 5 * 3, 60, "3 flaky posts each")
        # and once more the hard way: kill -9 (at least once: an attempt may be repeated)
        own.stop("dispatcher", signal.SIGKILL)
        own.start("dispatcher")

        def settled() -> dict[str, list[tuple[int, str, int | None]]] | None:
            rows = {d: attempts(stack, d) for d in expected}
            done = all(r and r[-1][1] in ("DELIVERED", "DEAD") for r in rows.values())
            return rows if done else None

        final = eventually(settled, 90, "every delivery ends")
        for delivery, rows in final.items():
            numbers = sorted({n for n, _, _ in rows})
            ends = [(n, outcome) for n, outcome, _ in rows if outcome in ("DELIVERED", "DEAD")]
            if expected[delivery] == flaky:
                assert numbers == [1, 2, 3, 4] and ends == [(4, "DELIVERED")], rows
            else:
                assert numbers == [1, 2, 3, 4, 5, 6] and ends == [(6, "DEAD")], rows
            # the partner saw every recorded attempt, all signed, with one delivery id throughout
            posts = receiver.posts("flaky" if expected[delivery] == flaky else "gone", delivery)
            assert len(posts) >= len(rows) and all(p.valid for p in posts)
        dead = {d for d, s in expected.items() if s == gone}
        in_dlq: set[str | None] = set()
        eventually(lambda: in_dlq.update(m.message_id for m in drain_queue(stack, own.schedule.dlq)) or in_dlq == dead)
        assert sorted(e["payload"]["deliveryId"] for e in failed_events(stack, serde, dead)) == sorted(dead)
    finally:
        unsubscribe(shop, flaky)
        unsubscribe(shop, gone)


def test_the_stack_runs_the_seed_schedule(stack: Stack) -> None:
    for name, prefix in (
        ("webhook-fanout", "SHOPSTREAM_WEBHOOK_FANOUT__"),
        ("webhook-dispatcher", "SHOPSTREAM_WEBHOOK_DISPATCHER__"),
    ):
        env = {c.name: c.environment for c in stack.components}[name]
        assert json.loads(env[prefix + "RETRY_SCHEDULE"]) == [30, 120, 300, 900, 1800]
