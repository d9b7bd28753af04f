"""The dataflows on real Kafka + Redis: events produced (Avro, registered schemas) → the values
the projections must hold; a dataflow killed with SIGKILL mid-stream and restarted ends with the
same values as the stack's uninterrupted one; a poison record goes to the dead-letter topic and
processing continues."""

from __future__ import annotations

import json
import os
import random
import signal
import string
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from shopstream.domain import envelope, event_type
from shopstream.serde import AvroSerde, RegistryClient
from shopstream.stack.components.kafka import create_event_topics
from shopstream.stack.stack import Stack
from tests.support import eventually, stock_adjusted

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
ADJUSTED = event_type("ecommerce.inventory.stock.adjusted.v1")
PAID = event_type("ecommerce.order.order.paid.v1")
CANCELED = event_type("ecommerce.order.order.canceled.v1")
MINUTE, DAY = 60_000, 86_400_000


@pytest.fixture(scope="module")
def serde(stack: Stack) -> Iterator[AvroSerde]:
    registry = RegistryClient(stack.settings.registry.url)
    yield AvroSerde(registry)
    registry.close()


@pytest.fixture(scope="module")
def producer(stack: Stack) -> Iterator[Producer]:
    p = Producer({"bootstrap.servers": stack.settings.kafka.bootstrap, "linger.ms": 5, "enable.idempotence": True})
    yield p
    assert p.flush(30) == 0


def produce(
    producer: Producer, serde: AvroSerde, event: Any, payload: dict[str, Any], at_ms: int, prefix: str = ""
) -> None:
    record = envelope(
        event,
        payload,
        producer="test",
        correlation_id="test-dataflows",
        trace_id=uuid.uuid4().hex,
        occurred_at=datetime.fromtimestamp(at_ms / 1000, UTC),
    )
    # the record's timestamp is its event time, as Debezium's would be (the commit time): the
    # dataflow's partition time alignment reads partitions in that order
    producer.produce(
        prefix + event.topic, key=record["partitionKey"], value=serde.encode(event.subject, record), timestamp=at_ms
    )


def test_stock_adjustments_become_the_inventory_snapshot_in_redis(
    producer: Producer, serde: AvroSerde, cache: redis.Redis
) -> None:
    product = f"P-flow-{uuid.uuid4().hex[:10]}"
    now = int(time.time() * 1000)
    history = [
        ("RESTOCK", 10, 10, 0),
        ("RESERVATION", -3, 10, 3),
        ("RESERVATION", -2, 10, 5),
        ("RELEASE", 2, 10, 3),
        ("SHIPMENT", 0, 7, 0),
    ]
    for version, (reason, delta, on_hand, reserved) in enumerate(history, 1):
        produce(producer, serde, ADJUSTED, stock_adjusted(product, delta, reason, on_hand, reserved, version), now)
    # a redelivered (older) adjustment changes nothing
    produce(producer, serde, ADJUSTED, stock_adjusted(product, -3, "RESERVATION", 10, 3, 2), now)
    producer.flush(10)
    key = f"inventory:{product}"
    eventually(lambda: cache.hget(key, "version") == "5", timeout=60, what=f"{key} at version 5")
    time.sleep(1)
    snapshot = cache.hgetall(key)
    assert snapshot == {
        "productId": product,
        "onHand": "7",
        "reserved": "0",
        "available": "7",
        "version": "5",
        "updatedAt": str(now),
    }


def test_a_poison_record_goes_to_the_dead_letter_topic_and_processing_continues(
    stack: Stack, producer: Producer, serde: AvroSerde, cache: redis.Redis
) -> None:
    product = f"P-poison-{uuid.uuid4().hex[:10]}"
    dlq = "shopstream.dlq.inventory_snapshot"
    consumer = Consumer({"bootstrap.servers": stack.settings.kafka.bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    meta = consumer.list_topics(dlq, timeout=10).topics[dlq]
    consumer.assign(
        [TopicPartition(dlq, p, consumer.get_watermark_offsets(TopicPartition(dlq, p))[1]) for p in meta.partitions]
    )
    producer.produce(ADJUSTED.topic, key=product, value=b"\x00\x00\x00\x00\x01not avro at all")
    producer.produce(ADJUSTED.topic, key=product, value=b'{"json": "instead of Avro"}')
    misfiled = stock_adjusted(product, 9, "RESTOCK", 9, 0, 1)  # a good event under a key that is not UTF-8
    record = envelope(ADJUSTED, misfiled, producer="t", correlation_id="c", trace_id="0" * 32)
    producer.produce(ADJUSTED.topic, key=b"\xff\xfe" + product.encode(), value=serde.encode(ADJUSTED.subject, record))
    produce(producer, serde, ADJUSTED, stock_adjusted(product, 4, "RESTOCK", 4, 0, 1), int(time.time() * 1000))
    producer.flush(10)
    eventually(
        lambda: cache.hget(f"inventory:{product}", "available") == "4",
        timeout=60,
        what="the good record after the poison",
    )
    letters = []
    deadline = time.monotonic() + 30
    while len(letters) < 3 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None and msg.key() in (product.encode(), b"\xff\xfe" + product.encode()):
            letters.append(msg)
    consumer.close()
    # the misfiled record has another key, so another partition: it may come first or last
    same_key = [m for m in letters if m.key() == product.encode()]
    assert [m.value() for m in same_key] == [b"\x00\x00\x00\x00\x01not avro at all", b'{"json": "instead of Avro"}']
    first, second = ({k: v.decode() for k, v in m.headers()} for m in same_key)
    [third] = [{k: v.decode() for k, v in m.headers()} for m in letters if m.key() != product.encode()]
    assert first["dlq.topic"] == ADJUSTED.topic and first["dlq.dataflow"] == "inventory_snapshot"
    assert "UndecodableRecord" in first["dlq.reason"] or "SchemaNotRegistered" in first["dlq.reason"]
    assert "BadMagicByte" in second["dlq.reason"]
    assert int(second["dlq.offset"]) == int(first["dlq.offset"]) + 1
    assert "is not the event's partition key" in third["dlq.reason"]


def revenue_history(currency: str, orders: int, start: int) -> list[tuple[str, str, int, int]]:
    """(kind, order id, amount, event time) of `orders` payments over five minutes, a quarter of
    them canceled later, in event-time order."""
    rnd = random.Random(7)
    events = []
    for i in range(orders):
        at = start + rnd.randrange(5 * MINUTE)
        amount = rnd.randrange(100, 100_000)
        events.append(("paid", f"ORD-{currency}-{i}", amount, at))
        if i % 4 == 0:
            events.append(("canceled", f"ORD-{currency}-{i}", amount, at + rnd.randrange(2 * MINUTE)))
    events.sort(key=lambda e: (e[3], e[0] == "canceled"))
    return events


def expected_windows(events: list[tuple[str, str, int, int]]) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for kind, _, amount, at in events:
        sign = 1 if kind == "paid" else -1
        for name, size in (("1m", MINUTE), ("1d", DAY)):
            window = out[f"{name}:{at - at % size}"]
            window[0] += sign * amount
            window[1] += sign
    return {k: (v[0], v[1]) for k, v in out.items()}


def windows_in(cache: redis.Redis, currency: str) -> dict[str, tuple[int, int, str]]:
    found = {}
    for key in cache.scan_iter(f"revenue:*:{currency}:*", count=1000):
        name, _, start = key.split(":")[1:]
        v = cache.hgetall(key)
        found[f"{name}:{start}"] = (int(v["amountMinor"]), int(v["orders"]), v["final"])
    return found


def test_revenue_windows_survive_kill_9_with_the_values_of_an_uninterrupted_run(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path
) -> None:
    currency = "Z" + "".join(random.choices(string.ascii_uppercase, k=2))
    start = (int(time.time() * 1000) - DAY) // DAY * DAY  # yesterday: minute windows live 2 days in Redis
    events = revenue_history(currency, 20_000, start)  # a few seconds of work: the kill lands mid-stream
    # once all of them are in, a payment a day later closes every window
    closer = ("paid", f"ORD-{currency}-closer", 1, start + DAY + 20 * MINUTE)
    running = expected_windows(events)
    expected = expected_windows([*events, closer])
    closed = set(running)

    # two instances of the dataflow of our own, on topics of their own (these synthetic orders
    # exist in no database: the platform's event log, which the OLAP layer reconciles against
    # Postgres, must not carry them), each with its own group, state, dead-letter topic and Redis
    # db: one is killed mid-stream and restarted, the other runs uninterrupted
    prefix = f"test-revenue-{uuid.uuid4().hex[:8]}."
    create_event_topics(stack.settings.kafka.bootstrap, prefix)
    killed, uninterrupted = RevenueFlow(stack, tmp_path, 1, prefix), RevenueFlow(stack, tmp_path, 2, prefix)
    for event in events:
        produce_order_event(producer, serde, currency, *event, prefix=prefix)
    producer.flush(30)

    def sums(flow: RevenueFlow) -> dict[str, tuple[int, int]]:
        return {k: v[:2] for k, v in windows_in(flow.cache, currency).items()}

    def done(flow: RevenueFlow) -> dict[str, tuple[int, int, str]] | None:
        found = windows_in(flow.cache, currency)
        finished = all(found.get(k, (0, 0, "0"))[2] == "1" for k in closed)
        return found if finished and found.keys() == expected.keys() else None

    try:
        killed.start()
        uninterrupted.start()
        eventually(lambda: windows_in(killed.cache, currency), timeout=90, what="the first window values")
        killed.kill()  # mid-stream: no shutdown, no final commit
        seen_at_kill = sums(killed)
        killed.start()
        for flow in (killed, uninterrupted):
            eventually(lambda: sums(flow) == running, timeout=180, what="every event counted once")  # noqa: B023
        produce_order_event(producer, serde, currency, *closer, prefix=prefix)
        producer.flush(10)
        after_restart = eventually(lambda: done(killed), timeout=60, what="every window final after the restart")
        reference = eventually(lambda: done(uninterrupted), timeout=60, what="the uninterrupted run")
    finally:
        killed.stop()
        uninterrupted.stop()
    assert seen_at_kill != running, "the kill did not land mid-stream"
    assert after_restart == reference
    assert {k: v[:2] for k, v in after_restart.items()} == expected


def produce_order_event(
    producer: Producer, serde: AvroSerde, currency: str, kind: str, order: str, amount: int, at: int, prefix: str
) -> None:
    if kind == "paid":
        payload = {
            "orderId": order,
            "userId": "USER-flow",
            "paymentId": f"PAY-{order}",
            "amount": {"amountMinor": amount, "currency": currency},
            "paidAt": at,
        }
        produce(producer, serde, PAID, payload, at, prefix)
    else:
        payload = {"orderId": order, "userId": "U", "reason": "test", "canceledBy": "U", "releasedItems": []}
        produce(producer, serde, CANCELED, payload, at, prefix)


class RevenueFlow:
    """A revenue_windows process of the test's own, writing to Redis db `db`."""

    def __init__(self, stack: Stack, tmp: Path, db: int, prefix: str) -> None:
        run_id = uuid.uuid4().hex[:8]
        group = f"test-revenue-{run_id}"
        self.env = {
            **os.environ,
            "SHOPSTREAM_REVENUE_WINDOWS__CONSUMER_GROUP": group,
            "SHOPSTREAM_REVENUE_WINDOWS__TOPIC_PREFIX": prefix,
            # the events below span 7 minutes of event time but are produced in one burst, so
            # partitions are read in no particular event-time order: nothing may count as late
            # (lateness itself is a unit test's job)
            "SHOPSTREAM_REVENUE_WINDOWS__GRACE_MS": str(10 * MINUTE),
            "SHOPSTREAM_REVENUE_WINDOWS__STATE_DIR": str(tmp / f"state-{db}"),
            "SHOPSTREAM_REVENUE_WINDOWS__DEAD_LETTER_TOPIC": f"test.dlq.revenue.{run_id}",
            "SHOPSTREAM_REVENUE_WINDOWS__REDIS_URL": f"redis://{stack.settings.redis.host}:{stack.settings.redis.port}/{db}",
        }
        # its topics are new: the group reads them from their start (auto.offset.reset=earliest)
        self.cache = redis.Redis(
            host=stack.settings.redis.host, port=stack.settings.redis.port, db=db, decode_responses=True
        )
        self.log = tmp / f"flow-{db}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            argv = [SHOPSTREAM, "streams", "run", "revenue_windows"]
            self.process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def test_streams_cli_lists_the_dataflows_and_reports_lag_state_and_dead_letters(stack: Stack) -> None:
    listed = subprocess.run([SHOPSTREAM, "streams", "list"], capture_output=True, text=True, timeout=60, check=True)
    for name in ("inventory_snapshot", "revenue_windows", "flash_sale_price_map", "SHOPSTREAM_REVENUE_WINDOWS__"):
        assert name in listed.stdout
    answer = subprocess.run(
        [SHOPSTREAM, "streams", "status", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    rows = {row["dataflow"]: row for row in json.loads(answer.stdout)}
    assert set(rows) == {"inventory_snapshot", "revenue_windows", "flash_sale_price_map", "serving_caches"}
    for row in rows.values():
        assert row["state"] == "up" and "error" not in row, row
        assert isinstance(row["lag"], int) and row["lag"] >= 0
        assert row["stateBytes"] > 0, "RocksDB state on disk"
        assert isinstance(row["deadLetters"], int)
    revenue_topics = set(rows["revenue_windows"]["lagByTopic"])
    assert PAID.topic in revenue_topics and any(t.startswith("repartition__") for t in revenue_topics)
    unknown = subprocess.run([SHOPSTREAM, "streams", "run", "nope"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no dataflow 'nope'" in unknown.stderr
