"""The dataflows on real Kafka + Redis, on both engines: events produced (Avro, registered schemas)
→ the values the projections must hold; the same log through Quix and through Bytewax ends in the
same Redis values and projection records; a poison record goes to the dead-letter topic and
processing continues; a dataflow killed with SIGKILL mid-stream ends with the values of an
uninterrupted run; a restart with a backlog spread unevenly over partitions drops no on-time
event; a Redis that comes back older than the dataflow's progress is repaired from the log."""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import string
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from dev.stack.components.redis import REDIS_SERVER
from dev.stack.stack import Stack
from shopstream.domain import event_type
from shopstream.runtime.topics import create_event_topics
from shopstream.serde import AvroSerde
from streams.core import Upsert
from streams.sinks import RedisSink, StoreRegressed
from tests.integration.flows import ENGINES, SHOPSTREAM, FlowProcess, produce
from tests.support import eventually, stock_adjusted

ADJUSTED = event_type("ecommerce.inventory.stock.adjusted.v1")
SNAPSHOT = event_type("ecommerce.inventory.stock_snapshot.updated.v1")
PAID = event_type("ecommerce.order.order.paid.v1")
CANCELED = event_type("ecommerce.order.order.canceled.v1")
FULFILLED = event_type("ecommerce.order.order.fulfilled.v1")
CREATED = event_type("ecommerce.order.order.created.v1")
WINDOW = event_type("ecommerce.analytics.revenue_window.updated.v1")
PRODUCT_UPDATED = event_type("ecommerce.product.product.updated.v1")
STARTED = event_type("ecommerce.pricing.flash_sale.started.v1")
ENDED = event_type("ecommerce.pricing.flash_sale.ended.v1")
MINUTE, DAY = 60_000, 86_400_000


def topics_of_our_own(stack: Stack, what: str) -> str:
    # short: Quix names its changelog topics after the group and every input topic together
    prefix = f"t{what[:2]}{uuid.uuid4().hex[:5]}."
    create_event_topics(stack.settings.kafka.bootstrap, prefix)
    # a record produced to a partition of a topic made a moment before has been seen lost (the first
    # four of one partition, with no error anyone looked at): produce once every partition has a leader
    admin = AdminClient({"bootstrap.servers": stack.settings.kafka.bootstrap})

    def led() -> bool:
        ours = [t for name, t in admin.list_topics(timeout=10).topics.items() if name.startswith(prefix)]
        return bool(ours) and all(p.leader >= 0 for t in ours for p in t.partitions.values())

    eventually(led, timeout=30, what=f"leaders for the {prefix}* topics")
    return prefix


def test_stock_adjustments_become_the_inventory_snapshot_in_redis(
    producer: Producer, serde: AvroSerde, cache: redis.Redis
) -> None:
    """Through the stack's own dataflow (whichever engine the stack runs it on)."""
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


@pytest.mark.parametrize("engine", ENGINES)
def test_once_input_stops_the_recorded_positions_reach_the_end_of_every_input(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess], engine: str
) -> None:
    """The positions the store holds are where a restart resumes and what `streams status` shows as
    lag: after the last record they must reach its end, also with nothing coming after it (Bytewax
    records positions at an epoch's end, in its sink's snapshot)."""
    prefix = topics_of_our_own(stack, "ends")
    flow = FlowProcess(stack, tmp_path, "inventory_snapshot", engine, prefix, db=3)
    flows.append(flow)
    flow.cache.flushdb()
    now = int(time.time() * 1000)
    products = [f"P-ends-{uuid.uuid4().hex[:8]}" for _ in range(30)]
    flow.start()
    # in bursts while it runs: the last records land in whichever epoch, and nothing follows them
    for burst in range(10):
        for i, product in enumerate(products[burst * 3 : burst * 3 + 3]):
            produce(producer, serde, ADJUSTED, stock_adjusted(product, 5, "RESTOCK", 5, 0, 1), now + i, prefix)
        producer.flush(10)
        time.sleep(0.35)
    topic = prefix + ADJUSTED.topic
    consumer = Consumer({"bootstrap.servers": stack.settings.kafka.bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {f"{topic}[{p}]": consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    consumer.close()
    assert sum(ends.values()) == len(products)

    def recorded() -> dict[str, int]:
        held = flow.cache.hgetall(f"streams:progress:{flow.group}")
        return {p: int(v) for p, v in held.items() if p.startswith(topic)}

    eventually(
        lambda: recorded() == ends,
        timeout=90,
        what=lambda: f"positions {ends} recorded ({engine}), not {recorded()}: {flow.tail()}",
    )
    assert all(flow.cache.hget(f"inventory:{p}", "available") == "5" for p in products)


@pytest.mark.parametrize("engine", ["bytewax"])  # Quix records the repartition topic's positions here
def test_records_that_write_nothing_read_last_still_have_their_positions_recorded(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess], engine: str
) -> None:
    """revenue_windows: fulfilments book nothing (no write reaches a sink); read last, their
    positions must still be recorded (Bytewax records positions in its sink's snapshot, which it
    takes only in epochs the sink had items: the engine sends it one every epoch)."""
    prefix = topics_of_our_own(stack, "quiet")
    flow = FlowProcess(stack, tmp_path, "revenue_windows", engine, prefix, db=3)
    flows.append(flow)
    flow.cache.flushdb()
    currency, now = a_currency(), int(time.time() * 1000)
    orders = [f"ORD-q-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    for i, order in enumerate(orders):
        produce_order_event(producer, serde, currency, "paid", order, 100 + i, now + i, prefix)
    producer.flush(10)
    flow.start()
    eventually(lambda: windows_in(flow.cache, currency), timeout=90, what=lambda: f"the windows: {flow.tail()}")
    time.sleep(3)  # the payments' positions are recorded; only fulfilments come now
    for i, order in enumerate(orders):
        payload = {"orderId": order, "userId": "U", "fulfilledAt": now + 100 + i, "trackingNumber": None}
        produce(producer, serde, FULFILLED, payload, now + 100 + i, prefix)
    producer.flush(10)
    consumer = Consumer({"bootstrap.servers": stack.settings.kafka.bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    ends: dict[str, int] = {}
    for event in (PAID, CANCELED, FULFILLED):
        topic = prefix + event.topic
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            ends[f"{topic}[{p}]"] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
    consumer.close()

    def recorded() -> dict[str, int]:
        held = flow.cache.hgetall(f"streams:progress:{flow.group}")
        return {p: int(v) for p, v in held.items() if p.startswith(prefix) and "repartition" not in p}

    def caught_up() -> bool:
        held = recorded()
        return all(held.get(p, 0) >= end for p, end in ends.items() if end > 0)

    eventually(
        caught_up, timeout=60, what=lambda: f"positions {ends} recorded ({engine}), not {recorded()}: {flow.tail()}"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_a_poison_record_goes_to_the_dead_letter_topic_and_processing_continues(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess], engine: str
) -> None:
    prefix = topics_of_our_own(stack, "poison")
    flow = FlowProcess(stack, tmp_path, "inventory_snapshot", engine, prefix, db=3)
    flows.append(flow)
    product = f"P-poison-{uuid.uuid4().hex[:10]}"
    topic = prefix + ADJUSTED.topic
    producer.produce(topic, key=product, value=b"\x00\x00\x00\x00\x01not avro at all")
    producer.produce(topic, key=product, value=b'{"json": "instead of Avro"}')
    misfiled = stock_adjusted(product, 9, "RESTOCK", 9, 0, 1)  # a good event under a key that is not UTF-8
    from shopstream.domain import envelope

    record = envelope(ADJUSTED, misfiled, producer="t", correlation_id="c", trace_id="0" * 32)
    producer.produce(topic, key=b"\xff\xfe" + product.encode(), value=serde.encode(ADJUSTED.subject, record))
    produce(producer, serde, ADJUSTED, stock_adjusted(product, 4, "RESTOCK", 4, 0, 1), int(time.time() * 1000), prefix)
    producer.flush(10)
    flow.start()
    eventually(
        lambda: flow.cache.hget(f"inventory:{product}", "available") == "4",
        timeout=90,
        what=lambda: f"the good record after the poison ({engine}): {flow.tail()}",
    )
    consumer = Consumer({"bootstrap.servers": stack.settings.kafka.bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    parts = consumer.list_topics(flow.dead_letter_topic, timeout=10).topics[flow.dead_letter_topic].partitions
    consumer.assign([TopicPartition(flow.dead_letter_topic, p, 0) for p in parts])
    letters = []
    deadline = time.monotonic() + 30
    while len(letters) < 3 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            letters.append(msg)
    consumer.close()
    # the misfiled record has another key, so another partition: it may come first or last
    same_key = [m for m in letters if m.key() == product.encode()]
    assert [m.value() for m in same_key] == [b"\x00\x00\x00\x00\x01not avro at all", b'{"json": "instead of Avro"}']
    first, second = ({k: v.decode() for k, v in m.headers()} for m in same_key)
    [third] = [{k: v.decode() for k, v in m.headers()} for m in letters if m.key() != product.encode()]
    assert first["dlq.topic"] == topic and first["dlq.dataflow"] == "inventory_snapshot"
    assert "UndecodableRecord" in first["dlq.reason"] or "SchemaNotRegistered" in first["dlq.reason"]
    assert "BadMagicByte" in second["dlq.reason"]
    assert int(second["dlq.offset"]) == int(first["dlq.offset"]) + 1
    assert "is not the event's partition key" in third["dlq.reason"]
    assert flow.running(), "a poison record does not stop the dataflow"


# --- revenue windows: kill -9, backlog, a store that lost writes ------------------------------


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


def produce_order_event(
    producer: Producer,
    serde: AvroSerde,
    currency: str,
    kind: str,
    order: str,
    amount: int,
    at: int,
    prefix: str,
    partition: int | None = None,
) -> None:
    if kind == "paid":
        payload = {
            "orderId": order,
            "userId": "USER-flow",
            "paymentId": f"PAY-{order}",
            "amount": {"amountMinor": amount, "currency": currency},
            "paidAt": at,
        }
        produce(producer, serde, PAID, payload, at, prefix, partition)
    else:
        payload = {"orderId": order, "userId": "U", "reason": "test", "canceledBy": "U", "releasedItems": []}
        produce(producer, serde, CANCELED, payload, at, prefix, partition)


def a_currency() -> str:
    return "Z" + "".join(random.choices(string.ascii_uppercase, k=2))


def differing(found: dict[str, Any], expected: dict[str, Any], most: int = 10) -> dict[str, Any]:
    """The keys whose values differ (or are missing on one side): {key: (found, expected)}."""
    keys = sorted(k for k in found.keys() | expected.keys() if found.get(k) != expected.get(k))
    return {k: (found.get(k), expected.get(k)) for k in keys[:most]}


@pytest.mark.parametrize("engine", ENGINES)
def test_revenue_windows_survive_kill_9_with_the_values_of_an_uninterrupted_run(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess], engine: str
) -> None:
    currency = a_currency()
    start = (int(time.time() * 1000) - DAY) // DAY * DAY  # yesterday: minute windows live 2 days in Redis
    events = revenue_history(currency, 20_000, start)  # a few seconds of work: the kill lands mid-stream
    # once all of them are in, a payment a day later closes every window
    closer = ("paid", f"ORD-{currency}-closer", 1, start + DAY + 20 * MINUTE)
    running = expected_windows(events)
    expected = expected_windows([*events, closer])
    closed = set(running)
    prefix = topics_of_our_own(stack, "revenue")
    # the events span 7 minutes of event time but are produced in one burst: nothing may count
    # as late here (lateness has tests of its own)
    grace = {"grace_ms": str(10 * MINUTE)}
    killed = FlowProcess(stack, tmp_path, "revenue_windows", engine, prefix, db=1, **grace)
    uninterrupted = FlowProcess(stack, tmp_path, "revenue_windows", engine, prefix, db=2, **grace)
    flows += [killed, uninterrupted]
    for flow in (killed, uninterrupted):
        flow.cache.flushdb()
    for event in events:
        produce_order_event(producer, serde, currency, *event, prefix=prefix)
    producer.flush(30)

    def sums(flow: FlowProcess) -> dict[str, tuple[int, int]]:
        return {k: v[:2] for k, v in windows_in(flow.cache, currency).items()}

    def done(flow: FlowProcess) -> dict[str, tuple[int, int, str]] | None:
        found = windows_in(flow.cache, currency)
        finished = all(found.get(k, (0, 0, "0"))[2] == "1" for k in closed)
        return found if finished and found.keys() == expected.keys() else None

    killed.start()
    uninterrupted.start()
    eventually(
        lambda: windows_in(killed.cache, currency),
        timeout=180,
        what=lambda: f"the first window values: {killed.tail()}",
    )
    killed.kill()  # mid-stream: no shutdown, no final commit
    seen_at_kill = sums(killed)
    killed.start()
    for flow in (killed, uninterrupted):
        eventually(
            lambda: flow.supervise() or sums(flow) == running,  # noqa: B023
            timeout=180,
            what=lambda: f"every event counted once, differing: {differing(sums(flow), running)} {flow.tail()}",  # noqa: B023
        )
    produce_order_event(producer, serde, currency, *closer, prefix=prefix)
    producer.flush(10)
    after_restart = eventually(
        lambda: killed.supervise() or done(killed), timeout=90, what=lambda: f"every window final: {killed.tail()}"
    )
    reference = eventually(
        lambda: uninterrupted.supervise() or done(uninterrupted),
        timeout=90,
        what=lambda: f"the uninterrupted run's windows final: {uninterrupted.tail()}",
    )
    assert seen_at_kill != running, "the kill did not land mid-stream"
    assert after_restart == reference
    assert {k: v[:2] for k, v in after_restart.items()} == expected


@pytest.mark.parametrize("engine", ENGINES)
def test_a_restart_with_a_backlog_on_one_partition_drops_no_on_time_event(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess], engine: str
) -> None:
    """The defect seen under load: after a restart, partition 0's backlog was read first and
    pushed the watermark past the other partitions' unread, on-time events. Here partition 0
    holds 8,000 payments over five minutes of event time and partitions 1 and 2 a few hundred
    each over the same minutes, all on time for the default 10 s grace had they been read in
    event-time order; every one must count."""
    currency = a_currency()
    start = (int(time.time() * 1000) - DAY) // DAY * DAY
    prefix = topics_of_our_own(stack, "backlog")
    flow = FlowProcess(stack, tmp_path, "revenue_windows", engine, prefix, db=4)  # the default grace
    flows.append(flow)
    flow.cache.flushdb()
    rnd = random.Random(11)
    events: list[tuple[str, str, int, int, int]] = []
    for partition, count in ((0, 8_000), (1, 300), (2, 300)):
        times = sorted(start + rnd.randrange(5 * MINUTE) for _ in range(count))
        events += [("paid", f"ORD-{currency}-{partition}-{i}", rnd.randrange(100, 10_000), t, partition)
                   for i, t in enumerate(times)]  # fmt: skip
    # the backlog: everything is in Kafka before the dataflow starts reading
    for kind, order, amount, at, partition in events:
        produce_order_event(producer, serde, currency, kind, order, amount, at, prefix, partition)
    producer.flush(30)
    expected = expected_windows([e[:4] for e in events])
    flow.start()
    found = eventually(
        lambda: (w := {k: v[:2] for k, v in windows_in(flow.cache, currency).items()}) == expected and w,
        timeout=180,
        what=lambda: f"every on-time payment counted ({engine}): {flow.tail()}",
    )
    assert sum(v[1] for k, v in found.items() if k.startswith("1m")) == len(events)


class PrivateRedis:
    """A Redis server of the test's own (it is killed), RDB snapshots only when told."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data = tmp / "redis"
        self.data.mkdir()
        self.log = tmp / "redis.log"
        self.servers: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        argv = [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data),
                "--save", "", "--appendonly", "no", "--logfile", str(self.log)]  # fmt: skip
        self.servers.append(subprocess.Popen(argv))
        client = redis.Redis(port=self.port)
        eventually(lambda: _pings(client), timeout=20, what="the private Redis")

    def kill(self) -> None:
        server = self.servers[-1]
        server.send_signal(signal.SIGKILL)
        server.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    for process in server.servers:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_a_redis_that_lost_the_writes_after_its_last_recorded_positions_is_found_behind(
    private_redis: PrivateRedis,
) -> None:
    """The Bytewax engine writes an epoch's values as they come and records the positions they
    reflect at the epoch's end, in a later script call. A Redis that comes back (AOF everysec)
    with the positions recorded last but without the values written after them must be found
    behind — not have the next positions recorded over the lost values, which nothing would
    then replay."""
    progress = "streams:progress:t-lost-writes"
    sink = RedisSink(f"redis://127.0.0.1:{private_redis.port}/0", progress)
    client = redis.Redis(port=private_redis.port, decode_responses=True)
    try:
        sink.apply([], {"orders[0]": 10})  # an epoch's end: the positions its values reflect
        client.save()  # what Redis will come back with
        window = Upsert("revenue:1m:ZZZ:0", 1, {"amountMinor": "500", "orders": "1"})
        sink.apply([window], {})  # the next epoch's values, as they come
        private_redis.kill()
        private_redis.start()
        sink.client.connection_pool.disconnect()  # the connection the kill closed
        assert client.hgetall(progress) == {"orders[0]": "10"} and not client.exists(window.key)
        with pytest.raises(StoreRegressed):
            sink.apply([], {"orders[0]": 20})  # the next epoch's end
        assert client.hgetall(progress) == {"orders[0]": "10"}, "positions recorded over lost values"
    finally:
        sink.close()
        client.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_redis_that_comes_back_older_is_repaired_from_the_log(
    stack: Stack,
    producer: Producer,
    serde: AvroSerde,
    tmp_path: Path,
    flows: list[FlowProcess],
    private_redis: PrivateRedis,
    engine: str,
) -> None:
    """Redis is killed mid-stream and comes back from a snapshot taken seconds earlier (as a Redis
    with RDB snapshots only did under load: 42 s old, while the dataflows had moved on). The
    dataflow sees the store behind its progress, replays the difference, and every projection
    key ends equal to an uninterrupted run (which writes to the stack's own Redis)."""
    port, data = private_redis.port, private_redis.data
    currency = a_currency()
    start = (int(time.time() * 1000) - DAY) // DAY * DAY
    events = revenue_history(currency, 12_000, start)
    closer = ("paid", f"ORD-{currency}-closer", 1, start + DAY + 20 * MINUTE)
    expected = expected_windows([*events, closer])
    prefix = topics_of_our_own(stack, "repair")
    grace = {"grace_ms": str(10 * MINUTE)}
    victim = FlowProcess(stack, tmp_path, "revenue_windows", engine, prefix, db=0, redis_port=port, **grace)
    reference = FlowProcess(stack, tmp_path, "revenue_windows", engine, prefix, db=5, **grace)
    flows += [victim, reference]
    reference.cache.flushdb()
    half = len(events) // 2
    for event in events[:half]:
        produce_order_event(producer, serde, currency, *event, prefix=prefix)
    producer.flush(30)
    victim.start()
    reference.start()
    eventually(
        lambda: len(windows_in(victim.cache, currency)) >= 2, timeout=90, what=lambda: f"first values: {victim.tail()}"
    )
    progress = f"streams:progress:{victim.group}"

    def recorded() -> int:
        return sum(int(v) for v in victim.cache.hgetall(progress).values())

    victim.cache.save()  # the snapshot Redis will come back from
    snapshot = data / "older.rdb"
    shutil.copy(data / "dump.rdb", snapshot)
    # the dataflow moves on past the snapshot (the second half, all of it in Redis), and its own
    # progress (Bytewax's recovery snapshot, Quix's committed offsets) with it
    for event in events[half:]:
        produce_order_event(producer, serde, currency, *event, prefix=prefix)
    producer.flush(30)
    eventually(
        lambda: recorded() >= len(events),
        timeout=90,
        what=lambda: f"every record ({recorded()} of {len(events)} recorded): {victim.tail()}",
    )
    time.sleep(3)
    private_redis.kill()
    shutil.copy(snapshot, data / "dump.rdb")
    private_redis.start()
    # supervisord restarts a dataflow that stopped (a lost connection, or the store found behind)
    deadline = time.monotonic() + 240
    produce_order_event(producer, serde, currency, *closer, prefix=prefix)
    producer.flush(10)
    while time.monotonic() < deadline:
        if not victim.running():
            victim.start()
        found = windows_in(victim.cache, currency)
        # every window final but the closing payment's own two
        closed = [k for k in expected if k not in expected_windows([closer])]
        if {k: v[:2] for k, v in found.items()} == expected and all(found[k][2] == "1" for k in closed):
            break
        time.sleep(0.5)
    else:
        found = {k: v[:2] for k, v in windows_in(victim.cache, currency).items()}
        diff = {
            k: (found.get(k), expected.get(k))
            for k in found.keys() | expected.keys()
            if found.get(k) != expected.get(k)
        }
        raise AssertionError(f"the store was not repaired: (found, expected) {diff}; {victim.tail()}")
    assert "replaying the difference" in victim.log.read_text(), "the dataflow found the store behind"
    want = eventually(lambda: windows_in(reference.cache, currency) or None, timeout=60, what="the reference")
    eventually(lambda: windows_in(reference.cache, currency) == windows_in(victim.cache, currency), timeout=60,
               what="the uninterrupted run's values")  # fmt: skip
    assert want


@pytest.mark.parametrize("engine", ENGINES)
def test_a_record_that_books_nothing_read_last_still_turns_the_windows_final(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess], engine: str
) -> None:
    """The last record read is a fulfilment (it books nothing) a day after the payments: its
    watermark closes their windows. Quix has no timers, so the windows learn of it only from an
    item (a `Tick` the order stage forwards); Bytewax's timers close them anyway."""
    currency = a_currency()
    start = (int(time.time() * 1000) - DAY) // DAY * DAY
    prefix = topics_of_our_own(stack, "tick")
    for i in range(5):
        produce_order_event(
            producer, serde, currency, "paid", f"ORD-{currency}-{i}", 100 + i, start + i * MINUTE, prefix
        )
    producer.flush(30)
    flow = FlowProcess(stack, tmp_path, "revenue_windows", engine, prefix, db=8, grace_ms=str(10 * MINUTE))
    flows.append(flow)
    flow.cache.flushdb()
    flow.start()
    eventually(
        lambda: len(windows_in(flow.cache, currency)) == 6, timeout=90, what=lambda: f"the windows: {flow.tail()}"
    )
    later = start + DAY + 30 * MINUTE
    fulfilled = {"orderId": f"ORD-{currency}-0", "userId": "U", "fulfilledAt": later, "trackingNumber": None}
    produce(producer, serde, FULFILLED, fulfilled, later, prefix)
    producer.flush(30)

    def final() -> dict[str, tuple[int, int, str]] | None:
        found = windows_in(flow.cache, currency)
        return found if all(v[2] == "1" for v in found.values()) else None

    try:
        found = eventually(final, timeout=60, what="every window final")
    except AssertionError:
        raise AssertionError(f"not final: {windows_in(flow.cache, currency)} {flow.tail()}") from None
    assert {k: v[:2] for k, v in found.items()} == expected_windows(
        [("paid", f"ORD-{currency}-{i}", 100 + i, start + i * MINUTE) for i in range(5)]
    )


# --- engine parity ---------------------------------------------------------------------------


def parity_log(dataflow: str, now: int) -> list[tuple[Any, dict[str, Any], int]]:
    """A recorded log for one dataflow: (event type, payload, event time), duplicates included."""
    rnd = random.Random(dataflow)
    later = now + DAY  # keys that expire with their event times outlive the test
    out: list[tuple[Any, dict[str, Any], int]] = []
    if dataflow == "inventory_snapshot":
        stock: dict[str, tuple[int, int, int]] = {}
        for i in range(3_000):
            p = f"P-par-{rnd.randrange(60)}"
            on_hand, reserved, version = stock.get(p, (100, 0, 0))
            reason = rnd.choice(["RESTOCK", "RESERVATION", "RELEASE"])
            delta = {"RESTOCK": 5, "RESERVATION": -1, "RELEASE": 1}[reason] if reserved or reason != "RELEASE" else 5
            if reason == "RELEASE" and not reserved:
                reason = "RESTOCK"
            on_hand, reserved = (on_hand + 5, reserved) if reason == "RESTOCK" else (on_hand, reserved - delta)
            stock[p] = (on_hand, reserved, version + 1)
            out.append((ADJUSTED, stock_adjusted(p, delta, reason, on_hand, reserved, version + 1), now + i))
            if i % 10 == 0:  # Debezium redelivered an earlier one
                out.append(out[rnd.randrange(len(out))])
    elif dataflow == "revenue_windows":
        start = now - now % DAY - DAY
        for kind, order, amount, at in revenue_history("ZPA", 2_000, start):
            if kind == "paid":
                payload = {"orderId": order, "userId": "U", "paymentId": f"PAY-{order}",
                           "amount": {"amountMinor": amount, "currency": "ZPA"}, "paidAt": at}  # fmt: skip
                out.append((PAID, payload, at))
            else:
                out.append((CANCELED, {"orderId": order, "userId": "U", "reason": "t", "canceledBy": "U",
                                       "releasedItems": []}, at))  # fmt: skip
            if rnd.random() < 0.2:
                out.append(
                    (FULFILLED, {"orderId": order, "userId": "U", "fulfilledAt": at, "trackingNumber": None}, at)
                )
        closer = {"orderId": "ORD-closer", "userId": "U", "paymentId": "PAY-c",
                  "amount": {"amountMinor": 1, "currency": "ZPA"}, "paidAt": start + 2 * DAY}  # fmt: skip
        out.append((PAID, closer, start + DAY + 30 * MINUTE))
    elif dataflow == "flash_sale_price_map":
        for i in range(800):
            p, sale = f"P-par-{rnd.randrange(40)}", f"S-{i}"
            starts = later + rnd.randrange(100) * MINUTE
            payload = {"saleId": sale, "productId": p, "salePrice": {"amountMinor": 500 + i, "currency": "USD"},
                       "regularPrice": {"amountMinor": 2_000, "currency": "USD"}, "startsAt": starts,
                       "endsAt": starts + 30 * MINUTE}  # fmt: skip
            out.append((STARTED, payload, now + i))
            if rnd.random() < 0.3:
                ended = {"saleId": sale, "productId": p, "endsAt": starts + 30 * MINUTE, "endedAt": now + i,
                         "endedBy": "ADMIN"}  # fmt: skip
                out.append((ENDED, ended, now + i))
    else:  # serving_caches
        for i in range(1_500):
            p = f"P-par-{rnd.randrange(50)}"
            payload = {"productId": p, "sku": p, "name": "n", "description": None,
                       "price": {"amountMinor": 100, "currency": "USD"}, "priceVersion": 1, "active": True,
                       "version": i}  # fmt: skip
            out.append((PRODUCT_UPDATED, payload, now + i))
        for i in range(1_500):
            order = f"ORD-par-{i}"
            created = {
                "orderId": order,
                "userId": "U",
                "totalAmount": {"amountMinor": 100, "currency": "USD"},
                "items": [{"productId": "P", "qty": 1, "unitPrice": {"amountMinor": 100, "currency": "USD"}}],
            }
            out.append((CREATED, created, later + i))
            if i % 2:
                paid = {"orderId": order, "userId": "U", "paymentId": "p",
                        "amount": {"amountMinor": 100, "currency": "USD"}, "paidAt": later + i}  # fmt: skip
                out.append((PAID, paid, later + i))
    return out


def last_records(stack: Stack, serde: AvroSerde, topic: str) -> dict[str, Any]:
    """The last payload per key on a topic (read to its end)."""
    consumer = Consumer({"bootstrap.servers": stack.settings.kafka.bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.partition.eof": True})  # fmt: skip
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    found: dict[str, Any] = {}
    done: set[int] = set()
    deadline = time.monotonic() + 30
    while len(done) < len(parts) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            done.add(msg.partition())
            continue
        found[msg.key().decode()] = serde.decode(msg.value())[1]["payload"]
    consumer.close()
    return found


PROJECTION_TOPICS = {"inventory_snapshot": SNAPSHOT, "revenue_windows": WINDOW}
REDIS_KEYS = {
    "inventory_snapshot": ("inventory:*", "top_products:ordered"),
    "revenue_windows": ("revenue:*",),
    "flash_sale_price_map": ("flash_price:*",),
    "serving_caches": ("product:*", "order_status:*"),
}


def field_differences(a: dict[str, str] | None, b: dict[str, str] | None) -> Any:
    """What differs between two hashes, field by field; a JSON list field as the items on one side only."""
    if a is None or b is None:
        return {"quix": a, "bytewax": b}
    out: dict[str, Any] = {}
    for f in sorted(a.keys() | b.keys()):
        x, y = a.get(f), b.get(f)
        if x == y:
            continue
        try:
            xs, ys = json.loads(x or "null"), json.loads(y or "null")
        except ValueError:
            xs = ys = None
        if isinstance(xs, list) and isinstance(ys, list):
            reordered = sorted(map(json.dumps, xs)) == sorted(map(json.dumps, ys))
            only_x, only_y = [i for i in xs if i not in ys], [i for i in ys if i not in xs]
            out[f] = {"quix only": only_x, "bytewax only": only_y, "same items, other order": reordered}
        else:
            out[f] = {"quix": x, "bytewax": y}
    return out


@pytest.mark.parametrize("dataflow", list(REDIS_KEYS))
def test_quix_and_bytewax_end_in_the_same_values(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess], dataflow: str
) -> None:
    log = parity_log(dataflow, int(time.time() * 1000))
    runs = []
    for db, engine in ((6, "quix"), (7, "bytewax")):
        prefix = topics_of_our_own(stack, f"parity-{engine}")
        for event, payload, at in log:
            produce(producer, serde, event, payload, at, prefix)
        # Redis only (what is compared): never the stack's live Cassandra table, which a replay's
        # parity compares with the log
        flow = FlowProcess(stack, tmp_path, dataflow, engine, prefix, db, grace_ms=str(10 * MINUTE), stores='["redis"]')
        flow.cache.flushdb()
        flows.append(flow)
        runs.append(flow)
    producer.flush(30)
    for flow in runs:
        flow.start()

    def values(flow: FlowProcess) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for pattern in REDIS_KEYS[dataflow]:
            out.update(flow.values(pattern))
        return out

    def settled() -> bool:
        a, b = values(runs[0]), values(runs[1])
        return bool(a) and a == b

    try:
        eventually(settled, timeout=180, what=lambda: f"the same Redis values: {runs[0].tail()} {runs[1].tail()}")
    except AssertionError:
        a, b = values(runs[0]), values(runs[1])
        diff = {k: field_differences(a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        sample = json.dumps(dict(sorted(diff.items())[:4]), indent=1)[:4000]
        raise AssertionError(
            f"{len(diff)} of {len(a.keys() | b.keys())} keys differ (quix, bytewax): {sample}"
            f" {runs[0].tail()[-1500:]} {runs[1].tail()[-1500:]}"
        ) from None
    time.sleep(2)  # both idle: nothing more comes
    assert values(runs[0]) == values(runs[1])
    event = PROJECTION_TOPICS.get(dataflow)
    if event is not None:
        quix, bytewax = (last_records(stack, serde, f.prefix + event.topic) for f in runs)
        assert quix and quix == bytewax
    if dataflow == "revenue_windows":  # every window but the closing payment's own is final
        finals = [v["final"] for k, v in values(runs[1]).items() if k.startswith("revenue:1m")]
        assert finals.count("0") == 1 and len(finals) > 5


def test_streams_cli_lists_the_dataflows_and_reports_progress_state_and_dead_letters(stack: Stack) -> None:
    listed = subprocess.run([SHOPSTREAM, "streams", "list"], capture_output=True, text=True, timeout=60, check=True)
    for name in ("inventory_snapshot", "revenue_windows", "flash_sale_price_map", "SHOPSTREAM_REVENUE_WINDOWS__"):
        assert name in listed.stdout
    answer = subprocess.run(
        [SHOPSTREAM, "streams", "status", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    rows = {row["dataflow"]: row for row in json.loads(answer.stdout)}
    assert set(rows) == {
        "inventory_snapshot",
        "revenue_windows",
        "flash_sale_price_map",
        "serving_caches",
        "orders_by_customer",
        "product_search_index",
    }
    for row in rows.values():
        assert row["state"] == "up" and "error" not in row, row
        assert row["engine"] in ENGINES
        assert isinstance(row["lag"], int) and row["lag"] >= 0
        assert row["stateBytes"] > 0, "local state on disk"
        assert isinstance(row["deadLetters"], int)
    assert PAID.topic in rows["revenue_windows"]["lagByTopic"]
    unknown = subprocess.run([SHOPSTREAM, "streams", "run", "nope"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no dataflow 'nope'" in unknown.stderr
    wrong = subprocess.run(
        [SHOPSTREAM, "streams", "run", "revenue_windows", "--engine", "flonk"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2 and "no engine 'flonk'" in wrong.stderr
