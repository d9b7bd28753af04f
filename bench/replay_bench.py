"""The replay service (issue 16) on this machine: the replay rate per projection, `verify` over 1M
keys, and what readers see while `promote` swaps a generation in (needs the stack: `shopstream up`).

Rate: per dataflow, N synthetic events of its input types (valid records of each type, encoded
with the registry's serde; N a multiple of the replay's 20,000-record batch, as its read loop waits
out a 1 s timeout on a last batch it cannot fill) on 3-partition topics of the bench's own
(`create_event_topics`, a prefix per dataflow), then `Replays(name, settings).run()` in this
process: generation 1 of a group of the bench's own, Redis db 10 (flushed first), a temporary
state dir, Cassandra and OpenSearch left out of `stores` (the rate is the replay's, not a store's).
events/s over the whole call (what the operator waits for: offsets, targets, the read loop, the
last checkpoint) and over its read loop alone; CPU: this process's user + system time over the
call. Ceiling, on the same topics in the same run: a bare confluent-kafka loop with the replay's
consumer settings (`streams.replay.runner.consumer`, batches of up to 20,000 like its read loop)
that decodes each record with `AvroSerde.decode(raw=True)` and does nothing else. Between the
two, loops that also make the typed events (`Inputs.event`) and that run the kernel in memory
(`ReplayRun` without a shadow). Two rounds of the four (each replay a new generation), the best of
each kept: the machine is shared. Profile: one replay once more under cProfile.

Store-bound shadows: inventory_snapshot with its Cassandra table and product_search_index with its
OpenSearch index, on the same topics, in a keyspace (`shopstream_bench_replay`, the migrations'
tables) and behind an alias of the bench's own; two generations each (the second is the one
promoted under readers below).

Verify: inventory_snapshot over M stock.adjusted records, one per product: generation 1 built and
copied into the live names (server-side `COPY`), then `Replays.compare_stores` times the
comparison of the live keys with the generation's. No live engine runs here, so there is nothing
to pause (`verify()` pauses a running dataflow through `streams.pause`): after 10 live keys are
tampered with, `verify(live_stopped=True)` is timed, with the progress hash a stopped engine
leaves; it must list exactly those 10.

Promote: N live `inventory:*` hashes (and `top_products:ordered`) and a generation of the same N
keys of which 1,000 differ (what a promotion changes: a repair), made server-side; the differing
keys found as `Replays.promote` finds them (both generations' digests, timed), then
`targets.promote_redis` with a reader process running from 1 s before to 1 s after it (redis-py as
the API reads: 250 ms socket timeout, one retry; HGETALL of random live keys, half of them among
the differing ones, in a loop). Each differing hash names its generation, so a read of the old one
after one of the new one would be counted. The same for the OpenSearch alias move (GET by id
through the alias, 2 s timeout) and the Cassandra `read_models` pointer (as the API reads: the
pointer looked up at most every second, then a SELECT by key from the table it names)."""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import os
import pstats
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import redis
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from shopstream.domain import EventType, envelope, event_type  # noqa: E402
from shopstream.runtime.settings import Cassandra, OpenSearch, Redis  # noqa: E402
from shopstream.runtime.topics import create_event_topics  # noqa: E402
from shopstream.serde import AvroSerde, RegistryClient  # noqa: E402
from streams import DATAFLOW_NAMES  # noqa: E402
from streams.catalog import dataflow  # noqa: E402
from streams.core import Projection, parse_partition_name  # noqa: E402
from streams.engines.inputs import Inputs  # noqa: E402
from streams.replay import compare, targets  # noqa: E402
from streams.replay.runner import BATCH, ReplayRun, consumer, end_offsets  # noqa: E402
from streams.replay.service import Replays  # noqa: E402
from streams.settings import DataflowSettings, Store  # noqa: E402
from streams.sinks.opensearch import PROGRESS_ALIAS  # noqa: E402

console = Console()
REPO = Path(__file__).resolve().parents[1]
GOAL_RATE = 100_000  # events/s from the log, one process
GOAL_FAILED_READS = 0  # while a promotion swaps a generation in
BENCH_DB = 10  # the Redis db of the bench (flushed before each part and at the end)
KEYSPACE = "shopstream_bench_replay"
READ_TIMEOUT_S = 0.25  # the API's Redis timeout (`shopstream.runtime.settings.Redis.timeout`)
STORE_TIMEOUT_S = 2.0  # the API's Cassandra and OpenSearch timeouts
AROUND_S = 1.0  # the readers run this long before and after a promotion
EVENTS_PER_KEY = 15  # the workloads' events per entity (product, order)
TAMPERED = 10
PASSES = 2  # of each loop over a projection's records, and of its replay (the best kept)
STORE_RUNS: dict[str, Store] = {"inventory_snapshot": "cassandra", "product_search_index": "opensearch"}
PARTS = ("rate", "profile", "stores", "verify", "promote")

ADJUSTED = event_type("ecommerce.inventory.stock.adjusted.v1")
SNAPSHOT = event_type("ecommerce.inventory.stock_snapshot.updated.v1")
CREATED, PAID = event_type("ecommerce.order.order.created.v1"), event_type("ecommerce.order.order.paid.v1")
FULFILLED = event_type("ecommerce.order.order.fulfilled.v1")
CANCELED = event_type("ecommerce.order.order.canceled.v1")
PRODUCT_UPDATED = event_type("ecommerce.product.product.updated.v1")
STARTED = event_type("ecommerce.pricing.flash_sale.started.v1")
ENDED = event_type("ecommerce.pricing.flash_sale.ended.v1")


class BenchError(RuntimeError):
    """A step that failed or timed out; the message says which."""


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- workloads -------------------------------------------------------------------------------------

Event = tuple[EventType, dict[str, Any], int]  # (event type, payload, event time ms)


def usd(minor: int) -> dict[str, Any]:
    return {"amountMinor": minor, "currency": "USD"}


def workload(name: str, n: int, start: int) -> tuple[str, Iterator[Event]]:
    """(what it is, n events of the dataflow's input types), event times 10 ms apart from `start`.
    Every entity's first event comes first, so each of the n / EVENTS_PER_KEY entities exists."""
    keys = max(1, n // EVENTS_PER_KEY)
    rnd = random.Random(16)

    def pick(i: int) -> int:
        return i if i < keys else rnd.randrange(keys)

    def stock(i: int, versions: list[int]) -> tuple[int, dict[str, Any]]:
        p = pick(i)
        versions[p] += 1
        on_hand, reserved = rnd.randrange(200), rnd.randrange(4)
        return p, {"onHand": on_hand, "reserved": reserved, "available": on_hand - reserved,
                   "version": versions[p]}  # fmt: skip

    def sale(i: int, p: int) -> Event:
        at = start + i * 10
        if i % 4 == 3:
            ended = {"saleId": f"S{i - 1}", "productId": f"P-{p}", "endsAt": at + 86_400_000, "endedAt": at,
                     "endedBy": "A"}  # fmt: skip
            return ENDED, ended, at
        started = {"saleId": f"S{i}", "productId": f"P-{p}", "salePrice": usd(800), "regularPrice": usd(1_000),
                   "startsAt": at, "endsAt": at + 86_400_000 + i}  # fmt: skip
        return STARTED, started, at

    def product(p: int, version: int) -> dict[str, Any]:
        return {"productId": f"P-{p}", "sku": f"SKU-{p}", "name": f"bench mug {p}", "description": None,
                "price": usd(1_000 + p % 1_000), "priceVersion": 1, "active": True, "version": version,
                "category": "mugs"}  # fmt: skip

    def inventory() -> Iterator[Event]:
        versions = [0] * keys
        for i in range(n):
            p, s = stock(i, versions)
            payload = {"productId": f"P-{p}", "delta": -1, "reason": "RESERVATION", "orderId": f"O{i}",
                       "available": s["available"], "onHand": s["onHand"], "reserved": s["reserved"],
                       "stockVersion": s["version"]}  # fmt: skip
            yield ADJUSTED, payload, start + i * 10

    def revenue() -> Iterator[Event]:
        for i in range(n):  # a fifth are cancellations of an order paid just before
            at = start + i * 10
            if i % 5 == 4:
                payload = {"orderId": f"ORD-{i // 5 * 5}", "userId": "U", "reason": "bench", "canceledBy": "U",
                           "releasedItems": []}  # fmt: skip
                yield CANCELED, payload, at
            else:
                amount = {"amountMinor": rnd.randrange(100, 100_000), "currency": rnd.choice(["USD", "EUR", "GBP"])}
                yield PAID, {"orderId": f"ORD-{i}", "userId": "U", "paymentId": f"PAY{i}", "amount": amount,
                             "paidAt": at}, at  # fmt: skip

    def orders(products: bool) -> Iterator[Event]:
        """Orders through their life (created → paid → fulfilled, or canceled), a thousand open at
        a time; with `products`, a fifth product.updated besides."""
        versions = [0] * keys
        pool: list[tuple[str, str, str]] = []  # (orderId, userId, status) of the open orders
        made = 0
        for i in range(n):
            at = start + i * 10
            roll = rnd.random()
            if products and roll < 0.2:
                p = pick(i)
                versions[p] += 1
                yield PRODUCT_UPDATED, product(p, versions[p]), at
            elif pool and (roll > 0.6 or len(pool) >= 1_000):
                j = rnd.randrange(len(pool))
                order, user, status = pool[j]
                if status == "PENDING" and rnd.random() < 0.9:
                    pool[j] = (order, user, "PAID")
                    yield PAID, {"orderId": order, "userId": user, "paymentId": f"PAY-{order}",
                                 "amount": usd(2_000), "paidAt": at}, at  # fmt: skip
                    continue
                pool[j] = pool[-1]
                pool.pop()
                if status == "PAID" and rnd.random() < 0.8:
                    yield FULFILLED, {"orderId": order, "userId": user, "fulfilledAt": at,
                                      "trackingNumber": None}, at  # fmt: skip
                else:
                    yield CANCELED, {"orderId": order, "userId": user, "reason": "bench", "canceledBy": user,
                                     "releasedItems": []}, at  # fmt: skip
            else:
                order, user = f"ORD-{made}", f"U{made % 500}"
                made += 1
                item = {"productId": f"P-{rnd.randrange(2_000)}", "qty": 1, "unitPrice": usd(2_000)}
                pool.append((order, user, "PENDING"))
                yield CREATED, {"orderId": order, "userId": user, "totalAmount": usd(2_000), "items": [item]}, at

    def search() -> Iterator[Event]:
        versions, stock_versions = [0] * keys, [0] * keys
        for i in range(n):
            at = start + i * 10
            roll = rnd.random()
            if i < keys or roll < 0.3:
                p = pick(i)
                versions[p] += 1
                yield PRODUCT_UPDATED, product(p, versions[p]), at
            elif roll < 0.8:
                p, s = stock(i, stock_versions)
                yield SNAPSHOT, {"productId": f"P-{p}", **s, "updatedAt": at}, at
            else:
                yield sale(i, rnd.randrange(keys))

    def sales() -> Iterator[Event]:
        for i in range(n):
            yield sale(i, pick(i))

    made: dict[str, tuple[str, Callable[[], Iterator[Event]]]] = {
        "inventory_snapshot": (f"stock.adjusted over {keys:,} products", inventory),
        "revenue_windows": ("order.paid, a fifth order.canceled; 3 currencies", revenue),
        "flash_sale_price_map": (f"flash_sale.started, a quarter ended, over {keys:,} products", sales),
        "serving_caches": ("a fifth product.updated, the rest orders through their life", lambda: orders(True)),
        "orders_by_customer": ("order created → paid → fulfilled or canceled", lambda: orders(False)),
        "product_search_index": (f"product.updated, stock snapshots, flash sales over {keys:,} products", search),
    }
    what, events = made[name]
    return what, events()


def one_per_product(n: int, start: int) -> Iterator[Event]:
    """n stock.adjusted, one per product: a projection of n keys."""
    for i in range(n):
        payload = {"productId": f"P-{i}", "delta": -1, "reason": "RESERVATION", "orderId": f"O{i}",
                   "available": 99 - i % 100, "onHand": 100, "reserved": 1 + i % 100,
                   "stockVersion": 1}  # fmt: skip
        yield ADJUSTED, payload, start + i


def produce(bootstrap: str, serde: AvroSerde, prefix: str, events: Iterator[Event]) -> int:
    """The events on the bench's copy of the event topics, encoded as they go; how many."""
    failed: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(f"{msg.topic()}: {err}")

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000,
                         "queue.buffering.max.messages": 2_000_000,
                         "queue.buffering.max.kbytes": 1_048_576})  # fmt: skip
    n = 0
    for event, payload, at in events:
        record = envelope(event, payload, producer="bench", correlation_id="bench", trace_id="0" * 32,
                          occurred_at=datetime.fromtimestamp(at / 1000, UTC))  # fmt: skip
        value = serde.encode(event.subject, record)
        while True:
            try:
                producer.produce(prefix + event.topic, value, record["partitionKey"].encode(), timestamp=at,
                                 on_delivery=delivered)  # fmt: skip
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
    if producer.flush(300) > 0 or failed:
        raise BenchError(f"producing the workload failed: {failed[:3] or 'not acknowledged within 300 s'}")
    return n


# --- the bench's own stores -------------------------------------------------------------------------


@dataclass
class Bench:
    stack: StackSettings
    run_id: str
    tmp: Path
    serde: AvroSerde
    progress_docs: set[str] = field(default_factory=set)  # the OpenSearch positions the replays recorded

    @property
    def root(self) -> str:
        return f"bench-replay-{self.run_id}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.stack.redis.host}:{self.stack.redis.port}/{BENCH_DB}"

    @property
    def alias(self) -> str:
        return f"{self.root}-products"

    def redis(self, **options: Any) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, **({"socket_timeout": 120} | options))

    def settings(self, name: str, tag: str, stores: tuple[Store, ...]) -> DataflowSettings:
        """The dataflow's settings for a replay of the bench's own: its topics and group (`tag`
        names the workload), Redis db, state dir, Cassandra keyspace and OpenSearch alias."""
        return dataflow(name).settings(
            topic_prefix=f"{self.root}-{tag}.",
            consumer_group=f"{self.root}-{tag}",
            redis=Redis(url=self.redis_url),
            state_dir=self.tmp / "state",
            stores=stores,
            cassandra=Cassandra(contact_points=self.stack.cassandra.address, keyspace=KEYSPACE),
            opensearch=OpenSearch(url=self.stack.opensearch.url, products_alias=self.alias),
            log_level="WARNING",
        )

    def topics(self, tag: str) -> str:
        prefix = f"{self.root}-{tag}."
        create_event_topics(self.stack.kafka.bootstrap, prefix)
        return prefix


def cassandra_session(bench: Bench, keyspace: str | None = None) -> tuple[Any, Any]:
    from cassandra.cluster import Cluster

    cluster = Cluster([bench.stack.cassandra.host], port=bench.stack.cassandra.port, connect_timeout=10)
    session = cluster.connect(keyspace)
    session.default_timeout = 60
    return cluster, session


def make_stores(bench: Bench) -> None:
    """The migrations' tables in a keyspace of the bench's own, and an empty products index behind
    an alias of its own: what a replay's shadows are made like (`Replays` makes a projection's
    shadow tables and index whatever its `stores`)."""
    cluster, session = cassandra_session(bench)
    try:
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} "
                        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")  # fmt: skip
        for migration in ("0001_serving_stores.cql", "0002_read_models.cql"):
            cql = (REPO / "migrations" / "cassandra" / migration).read_text()
            code = "\n".join(line.split("--", 1)[0] for line in cql.splitlines())  # comments may hold semicolons
            for statement in (s.strip() for s in code.split(";")):
                if statement.startswith(("CREATE TABLE", "CREATE TYPE")):
                    session.execute(statement.replace("shopstream.", f"{KEYSPACE}."))
    finally:
        cluster.shutdown()
    mapping = json.loads((REPO / "migrations" / "opensearch" / "products_v1.json").read_text())
    with httpx.Client(base_url=bench.stack.opensearch.url, timeout=60) as http:
        http.put(f"/{bench.alias}_v1", json=mapping).raise_for_status()
        actions = {"actions": [{"add": {"index": f"{bench.alias}_v1", "alias": bench.alias}}]}
        http.post("/_aliases", json=actions).raise_for_status()


def clean_up(bench: Bench) -> None:
    """Everything the bench made: its topics, its Redis db, keyspace, indices, recorded positions."""
    with contextlib.suppress(Exception):
        admin = AdminClient({"bootstrap.servers": bench.stack.kafka.bootstrap})
        ours = [t for t in admin.list_topics(timeout=10).topics if t.startswith(bench.root)]
        if ours:
            for future in admin.delete_topics(ours, operation_timeout=60).values():
                with contextlib.suppress(KafkaException):
                    future.result(timeout=120)
    with contextlib.suppress(redis.RedisError):
        bench.redis().flushdb(asynchronous=True)
    with contextlib.suppress(Exception):
        cluster, session = cassandra_session(bench)
        session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
        cluster.shutdown()
    with contextlib.suppress(httpx.HTTPError), httpx.Client(base_url=bench.stack.opensearch.url, timeout=60) as http:
        for index in http.get(f"/_cat/indices/{bench.root}-*", params={"format": "json"}).json():
            http.delete(f"/{index['index']}")
        for doc in bench.progress_docs:
            http.delete(f"/{PROGRESS_ALIAS}/_doc/{quote(doc, safe='')}")
    shutil.rmtree(bench.tmp, ignore_errors=True)


# --- timing what a call spends in one of its parts --------------------------------------------------


@dataclass
class Timer:
    calls: int = 0
    seconds: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end) monotonic


@contextlib.contextmanager
def timed(owner: Any, attribute: str) -> Iterator[Timer]:
    """`owner.attribute` (a module's function, a class's method) timed while in the block."""
    original = getattr(owner, attribute)
    timer = Timer()

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            timer.calls += 1
            timer.seconds += time.monotonic() - started
            timer.spans.append((started, time.monotonic()))

    setattr(owner, attribute, wrapper)
    try:
        yield timer
    finally:
        setattr(owner, attribute, original)


class TimedScripts:
    """A Redis client whose scripts' calls are timed: how long the promotion's script held Redis
    (from this side: sending its keys, running, answering)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.timer = Timer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def register_script(self, text: str) -> Callable[..., Any]:
        script = self.client.register_script(text)

        def call(**kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return script(**kwargs)
            finally:
                self.timer.calls += 1
                self.timer.seconds += time.monotonic() - started
                self.timer.spans.append((started, time.monotonic()))

        return call


# --- 1. the replay rate -------------------------------------------------------------------------------


@dataclass
class Rate:
    name: str
    what: str
    stores: tuple[str, ...]
    generation: int
    events: int
    run_s: float  # `Replays.run()`, the whole call
    loop_s: float  # its read loop (`Stats.wall_s`)
    cpu_s: float  # this process's CPU over the call
    writes: int
    withheld: int
    checkpoints: Timer
    ceiling: float = float("nan")  # events/s of the bare consume + decode loop
    ceiling_cpu_us: float = float("nan")
    typed: float = float("nan")  # events/s of consume + `Inputs.event`
    memory: float = float("nan")  # events/s of the read loop with no shadow (no writes, no checkpoints)

    @property
    def rate(self) -> float:
        return self.events / self.run_s

    @property
    def loop_rate(self) -> float:
        return self.events / self.loop_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.events * 1e6

    @property
    def share(self) -> float:
        return self.rate / self.ceiling


def read_pass(settings: DataflowSettings, projection: Projection, topics: list[str], how: str) -> tuple[float, float]:
    """(events/s, CPU µs per event) of a loop over the topics with the replay's consumer settings
    and batch, from the assignment to the last record, doing no more than `how` to each record:
    `decode` (`AvroSerde.decode(raw=True)`: the ceiling) or `event` (`Inputs.event`: the decode,
    the envelope's checks, the typed event, the projection's own checks)."""
    registry = RegistryClient(settings.registry.url)
    serde = AvroSerde(registry)
    inputs = Inputs(projection, serde, settings.topic_prefix)
    c = consumer(settings)
    try:
        ends = end_offsets(c, topics)
        n = sum(ends.values())
        deadline = time.monotonic() + 60 + n / 2_000
        seen = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        c.assign([TopicPartition(*parse_partition_name(p), 0) for p, end in ends.items() if end > 0])
        while seen < n:
            if time.monotonic() > deadline:
                raise BenchError(f"the {how} loop read {seen:,} of {n:,} records before its timeout")
            # never more than what is left: a consume that cannot fill its batch waits out its timeout
            for msg in c.consume(num_messages=min(BATCH, n - seen), timeout=1.0):
                if msg.error() is None:
                    if how == "decode":
                        serde.decode(msg.value(), raw=True)
                    else:
                        inputs.event(msg.topic(), msg.value(), msg.key())
                    seen += 1
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return seen / elapsed, cpu / seen * 1e6
    finally:
        c.close()
        registry.close()


def memory_pass(settings: DataflowSettings, projection: Projection, topics: list[str]) -> tuple[float, float]:
    """(events/s, CPU µs per event) of the replay's read loop with no shadow (what `plan` samples):
    decoding and the kernel's stages in memory, no writes, no checkpoints."""
    c = consumer(settings)
    try:
        ends = end_offsets(c, topics)
    finally:
        c.close()
    run = ReplayRun(projection, settings, None, None)
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        stats = run.run(dict.fromkeys(ends, 0), ends)
        return stats.read / (time.perf_counter() - t0), (time.process_time() - cpu0) / stats.read * 1e6
    finally:
        run.close()


def replay(bench: Bench, settings: DataflowSettings, name: str, what: str) -> Rate:
    """One `Replays.run()`: a new generation of the projection, timed."""
    replays = Replays(name, settings)
    cpu0, t0 = time.process_time(), time.perf_counter()
    with timed(ReplayRun, "checkpoint") as checkpoints:
        record = replays.run()
    run_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    s = record.stats
    if s["deadLetters"]:
        raise BenchError(f"{name}: {s['deadLetters']:,} of the bench's records were dead letters")
    if "opensearch" in replays.stores:  # its sink recorded the shadow's positions in the stack's index
        bench.progress_docs.add(record.shadow().progress_group)
    return Rate(name, what, tuple(settings.stores), record.generation, s["read"], run_s, s["wallSeconds"], cpu_s,
                s["writes"], s["withheld"], checkpoints)  # fmt: skip


def rates(bench: Bench, names: list[str], n: int) -> list[Rate]:
    out = []
    start = int(time.time() * 1000) - n * 10 - 60_000
    for name in names:
        what, events = workload(name, n, start)
        prefix = bench.topics(name)
        t0 = time.perf_counter()
        produce(bench.stack.kafka.bootstrap, bench.serde, prefix, events)
        console.print(f"{name}: {n:,} events ({what}) produced in {time.perf_counter() - t0:.1f} s")
        settings = bench.settings(name, name, ("redis",))
        topics = [prefix + e.topic for e in dataflow(name).inputs]
        bench.redis().flushdb(asynchronous=True)
        projection = dataflow(name).projection(settings)
        # two of each, interleaved, the best kept: the machine is shared, a pass can meet a busy moment
        tops, typed, memory, runs = [], [], [], []
        for _ in range(PASSES):
            tops.append(read_pass(settings, projection, topics, "decode"))
            typed.append(read_pass(settings, projection, topics, "event"))
            memory.append(memory_pass(settings, projection, topics))
            runs.append(replay(bench, settings, name, what))
        run = max(runs, key=lambda r: r.rate)
        run.ceiling, run.ceiling_cpu_us = max(tops)
        run.typed, run.memory = max(typed)[0], max(memory)[0]
        console.print(
            f"{name}: {run.rate:,.0f} events/s ({run.loop_rate:,.0f} in the read loop), {run.cpu_us:.1f} µs CPU/event;"
            f" ceiling {run.ceiling:,.0f} events/s ({run.share:.2f}), typed events {run.typed:,.0f}/s, in memory "
            f"{run.memory:,.0f}/s; checkpoints {run.checkpoints.calls} in {run.checkpoints.seconds:.2f} s"
        )
        out.append(run)
    return out


# --- the profile --------------------------------------------------------------------------------------


@dataclass
class Profile:
    name: str
    events: int
    seconds: float
    parts: list[tuple[str, str, float]]  # (id, part, cumulative s)
    own: list[tuple[str, int, float, float]]  # (function, calls, own s, cumulative s)
    cumulative: list[tuple[str, int, float, float]]

    def share(self, part: str) -> float:
        """Of the whole call."""
        held = {p: s for p, _, s in self.parts}
        return held.get(part, 0.0) / held.get("run", self.seconds)


def label(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name.replace("<built-in method ", "<").replace("<method ", "<")
    for marker in ("site-packages/", str(REPO) + "/", "lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
    return f"{filename}:{line} {name}"


def profile_parts(name: str) -> list[tuple[str, str, list[Any] | str]]:
    """(id, part, its functions — or a builtin's name), in the order they nest."""
    from shopstream.domain.typed_events import from_record
    from streams.core import PartitionClock, StageRunner, run_batch
    from streams.sinks.cassandra import CassandraSink
    from streams.sinks.opensearch import OpenSearchSink
    from streams.sinks.redis import RedisSink

    spec = dataflow(name)
    steps = [type(stage).step for stage in spec.projection(spec.settings()).stages]
    return [
        ("run", "`Replays.run()` (the whole call)", [Replays.run]),
        (
            "setup",
            "set-up: offsets, generation, shadow targets, sinks",
            [Replays._new, Replays._make_targets, ReplayRun.open_sinks],
        ),  # fmt: skip
        ("loop", "the read loop (`ReplayRun.run`)", [ReplayRun.run]),
        ("kafka", "· Kafka: `Consumer.consume`", "'consume' of 'cimpl.Consumer'"),
        ("event", "· decoding: `Inputs.event` (Avro, checks, typed event)", [Inputs.event]),
        ("decode", "· · `AvroSerde.decode`", [AvroSerde.decode]),
        ("typed", "· · `from_record` (the typed event)", [from_record]),
        ("item", "· `Inputs.item`", [Inputs.item]),
        ("clock", "· `PartitionClock.observe`", [PartitionClock.observe]),
        ("kernel", "· the kernel: `run_batch`", [run_batch]),
        ("runner", "· · `StageRunner.run` (per key: the replay check, the step)", [StageRunner.run]),
        ("step", f"· · · the stage's `step` (`streams/{name}.py`)", steps),
        ("apply", "· writes: `ReplayRun._apply`", [ReplayRun._apply]),
        ("retarget", "· · `Shadow.retarget`", [targets.Shadow.retarget]),
        ("redis", "· · `RedisSink.apply` (JSON, the Lua script)", [RedisSink.apply]),
        ("cassandra", "· · `CassandraSink.apply`", [CassandraSink.apply]),
        ("opensearch", "· · `OpenSearchSink.apply`", [OpenSearchSink.apply]),
        ("checkpoint", "· checkpoints: `ReplayRun.checkpoint`", [ReplayRun.checkpoint]),
    ]


def code_key(function: Any) -> tuple[str, int, str]:
    """How cProfile names a Python function."""
    code = function.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def profile(bench: Bench, name: str, what: str) -> Profile:
    """The replay of `name` once more (a new generation, the same topics), under cProfile."""
    settings = bench.settings(name, name, ("redis",))
    bench.redis().flushdb(asynchronous=True)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    try:
        run = replay(bench, settings, name, what)
    finally:
        profiler.disable()
    elapsed = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    entries = [(func, nc, tt, ct) for func, (_cc, nc, tt, ct, _callers) in stats.stats.items()]  # type: ignore[attr-defined]
    entries = [e for e in entries if not e[0][0].endswith("bench/replay_bench.py")]
    parts: list[tuple[str, str, float]] = []
    for what, part, functions in profile_parts(name):
        if isinstance(functions, str):  # a builtin, by its name
            found = sum(ct for (filename, _, fn), _, _, ct in entries if filename == "~" and functions in fn)
        else:
            keys = {code_key(f) for f in functions}
            found = sum(ct for func, _, _, ct in entries if func in keys)
        parts.append((what, part, found))
    own = sorted(entries, key=lambda e: e[2], reverse=True)[:12]
    cumulative = sorted(entries, key=lambda e: e[3], reverse=True)[:14]
    return Profile(
        name,
        run.events,
        elapsed,
        [p for p in parts if p[2] > 0],
        [(label(f), nc, tt, ct) for f, nc, tt, ct in own],
        [(label(f), nc, tt, ct) for f, nc, tt, ct in cumulative],
    )


# --- 1b. the store-bound shadows ------------------------------------------------------------------------


def store_runs(bench: Bench, name: str, what: str) -> tuple[list[Rate], Replays]:
    """Two generations of `name` with its Cassandra (OpenSearch) shadow on the rate's topics; the
    first is put live (without readers), so the second is promoted over a full live one."""
    store = STORE_RUNS[name]
    settings = bench.settings(name, name, ("redis", store))
    out = []
    replays = Replays(name, settings)
    for i in range(2):
        run = replay(bench, settings, name, what)
        console.print(f"{name} with its {store} shadow (generation {run.generation}): {run.rate:,.0f} events/s, "
                      f"{run.writes:,} writes")  # fmt: skip
        out.append(run)
        if i == 0:
            put_live(replays, run.generation)
    return out, replays


def put_live(replays: Replays, generation: int) -> None:
    """Generation `generation`'s Cassandra tables or OpenSearch index live (no Redis: the Redis
    promotion is measured on its own)."""
    record = replays.record(generation)
    if record.tables:
        with replays._cassandra() as (_, session):
            for logical, physical in record.tables.items():
                targets.point_cassandra(session, logical, physical, generation)
    with replays._opensearch() as http:
        for alias, index in record.indices.items():
            targets.promote_index(http, alias, index)


# --- 2. verify ----------------------------------------------------------------------------------------


@dataclass
class Verify:
    keys: int  # products
    compared: int  # keys on either side (the products, and the two rankings)
    build: Rate
    copy_s: float  # the generation copied into the live names
    compare_s: float
    phases: dict[str, float]  # of the comparison
    parity: bool
    verify_s: float  # `verify(live_stopped=True)`, with TAMPERED live keys changed
    verify_phases: dict[str, float]
    verify_parity: bool
    tampered: list[str]
    listed: list[str]  # the keys it found differing


# KEYS = a generation's keys, ARGV[1] = the length of its namespace: each copied to its live name
_COPY = """
local cut = tonumber(ARGV[1]) + 1
for _, key in ipairs(KEYS) do
  redis.call('COPY', key, string.sub(key, cut), 'REPLACE')
end
return #KEYS
"""


def verify(bench: Bench, n: int) -> Verify:
    """Generation 1 of n products, copied into the live names; the comparison timed, then the
    `verify` command (live stopped), then a comparison with 10 live keys changed."""
    name = "inventory_snapshot"
    r = bench.redis()
    r.flushdb(asynchronous=True)
    prefix = bench.topics("verify")
    t0 = time.perf_counter()
    produce(bench.stack.kafka.bootstrap, bench.serde, prefix, one_per_product(n, int(time.time() * 1000) - n))
    console.print(f"verify: {n:,} stock.adjusted (one per product) produced in {time.perf_counter() - t0:.1f} s")
    settings = bench.settings(name, "verify", ("redis",))
    replays = Replays(name, settings)
    build = replay(bench, settings, name, f"one stock.adjusted per product, {n:,} products")
    console.print(f"verify: generation 1 built, {build.rate:,.0f} events/s; checkpoints {build.checkpoints.calls} "
                  f"in {build.checkpoints.seconds:.1f} s")  # fmt: skip
    record = replays.record(build.generation)
    t0 = time.perf_counter()
    copy = r.register_script(_COPY)
    shadow_keys = targets.scan(r, replays.projection.redis_keys, record.redis_prefix)
    for first in range(0, len(shadow_keys), 10_000):
        copy(keys=shadow_keys[first : first + 10_000], args=[len(record.redis_prefix)])
    copy_s = time.perf_counter() - t0
    with (
        timed(targets, "scan") as scans,
        timed(compare, "redis_side") as sides,
        timed(compare, "differing_keys") as shards,
    ):
        t0 = time.perf_counter()
        (parity,) = replays.compare_stores(record)
        compare_s = time.perf_counter() - t0
    phases = {"scans": scans.seconds, "reading + digests": sides.seconds, "shards": shards.seconds}
    console.print(f"verify: {parity.compared:,} keys compared in {compare_s:.1f} s, {len(parity.differences)} differ")
    tampered = [f"inventory:P-{i}" for i in random.Random(7).sample(range(n), TAMPERED)]
    for key in tampered:
        r.hset(key, "available", "-1")
    # the progress hash a stopped engine leaves: the positions its stores reflect (the shadow's end)
    positions: dict[Any, Any] = dict(record.end)
    r.hset(settings.progress_key(name), mapping=positions)
    with (
        timed(ReplayRun, "_load") as loads,
        timed(ReplayRun, "checkpoint") as saves,
        timed(Replays, "compare_stores") as compares,
    ):
        t0 = time.perf_counter()
        result = replays.verify(build.generation, live_stopped=True)
        verify_s = time.perf_counter() - t0
    verify_phases = {"checkpoint load": loads.seconds, "checkpoint save": saves.seconds, "comparison": compares.seconds}
    listed = [d["key"] for store in result["stores"] for d in store["differences"]]
    console.print(f"verify: {TAMPERED} tampered; `verify(live_stopped=True)` in {verify_s:.1f} s lists {len(listed)}")
    r.flushdb(asynchronous=True)
    return Verify(n, parity.compared, build, copy_s, compare_s, phases, not parity.differences, verify_s,
                  verify_phases, bool(result["parity"]), tampered, listed)  # fmt: skip


# --- 3. promote under readers --------------------------------------------------------------------------

OLD, NEW, MISSING, FAILED, SAME = 0, 1, 2, 3, 4  # what a read saw (SAME: a key both generations hold alike)
DIFFERING = 1_000  # of a promoted generation's keys, those whose values differ from the live ones

# ARGV = the namespace, the first and last (exclusive) product, the generation
_FILL = """
local ns, gen = ARGV[1], ARGV[4]
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) - 1 do
  local id = 'P-' .. i
  redis.call('HSET', ns .. 'inventory:' .. id, 'productId', id, 'onHand', '120', 'reserved', '3',
             'available', '117', 'version', '7', 'updatedAt', '1764650000000', 'generation', gen)
  redis.call('ZADD', ns .. 'top_products:ordered', i % 997, id)
end
return 0
"""


def reader_worker(job: dict[str, Any]) -> int:
    """In a child process: reads of random keys until SIGTERM, then (start, ms, what it saw) of each
    to `job['out']`."""
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    read = reader(job)
    samples: list[tuple[float, float, int]] = []
    errors: Counter[str] = Counter()
    rnd = random.Random()
    ready = Path(job["ready"])
    hot = job.get("hot", 0)  # half the reads go to the first `hot` keys (those a promotion changes)
    while not stopping:
        key = rnd.randrange(hot) if hot and rnd.random() < 0.5 else rnd.randrange(job["keys"])
        started = time.monotonic()
        try:
            seen = read(key)
        except Exception as exc:  # noqa: BLE001 - every failed read is counted, by kind
            errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
            seen = FAILED
        samples.append((started, (time.monotonic() - started) * 1000, seen))
        if seen != FAILED and not ready.exists():
            ready.write_text("ready")
    Path(job["out"]).write_text(json.dumps({"samples": samples, "errors": dict(errors)}))
    return 0


def reader(job: dict[str, Any]) -> Callable[[int], int]:
    """A read of one live key as the API reads it: what it saw (OLD, NEW, MISSING)."""
    if job["kind"] == "redis":
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(job["url"], socket_timeout=READ_TIMEOUT_S, socket_connect_timeout=READ_TIMEOUT_S,
                                      health_check_interval=1, retry=Retry(NoBackoff(), 1),
                                      retry_on_error=[redis.ConnectionError])  # fmt: skip

        def read_redis(i: int) -> int:
            held: dict[bytes, bytes] = client.hgetall(f"inventory:P-{i}")  # type: ignore[assignment]
            return MISSING if not held else int(held[b"generation"]) if i < job.get("hot", job["keys"]) else SAME

        return read_redis
    if job["kind"] == "opensearch":
        http = httpx.Client(base_url=job["url"], timeout=STORE_TIMEOUT_S)

        def read_document(i: int) -> int:
            answer = http.get(f"/{job['alias']}/_doc/P-{i}")
            if answer.status_code == 404:
                return MISSING
            answer.raise_for_status()
            return NEW if answer.json()["_index"] == job["new"] else OLD

        return read_document
    from cassandra.cluster import Cluster

    cluster = Cluster([job["host"]], port=job["port"], connect_timeout=STORE_TIMEOUT_S)
    session = cluster.connect(job["keyspace"])
    pointer = session.prepare("SELECT physical FROM read_models WHERE name = ?")
    selects: dict[str, Any] = {}
    table, looked = job["table"], float("-inf")

    def read_row(i: int) -> int:
        nonlocal table, looked
        if time.monotonic() - looked >= 1.0:  # the API's POINTER_TTL_S
            row = session.execute(pointer, (job["table"],), timeout=STORE_TIMEOUT_S).one()
            table, looked = (row.physical if row is not None else job["table"]), time.monotonic()
        select = selects.get(table)
        if select is None:
            select = selects[table] = session.prepare(f"SELECT * FROM {table} WHERE product_id = ?")  # noqa: S608
        found = session.execute(select, (f"P-{i}",), timeout=STORE_TIMEOUT_S).one()
        return MISSING if found is None else NEW if table == job["new"] else OLD

    return read_row


@dataclass
class Promotion:
    store: str
    keys: int  # the generation's keys (Redis: hashes; OpenSearch: documents; Cassandra: rows)
    seconds: float  # the promotion call
    write_s: float  # Redis: the script call; else the one write
    scan_s: float  # Redis: the key scans before it
    reads: int
    failed: int
    missing: int
    old_after_new: int  # reads of the old generation after a read of the new one ended
    longest_ms: float  # of the reads in flight during the promotion
    stall_s: float  # the longest time between two reads that got an answer
    baseline_p99_ms: float  # of the reads before it
    baseline_max_ms: float
    errors: dict[str, int]
    changed: int = 0  # Redis: the keys that differed, which the promotion's script changed
    differences_s: float = 0.0  # Redis: finding them (both generations' digests)

    @property
    def bad(self) -> int:
        return self.failed + self.missing + self.old_after_new


@contextlib.contextmanager
def readers(bench: Bench, job: dict[str, Any]) -> Iterator[Callable[[], dict[str, Any]]]:
    """A reader process for the block; yields what returns its reads once it has stopped."""
    out, ready = bench.tmp / f"reads-{uuid.uuid4().hex[:6]}.json", bench.tmp / f"ready-{uuid.uuid4().hex[:6]}"
    job = {**job, "out": str(out), "ready": str(ready)}
    log = bench.tmp / "reader.log"
    with log.open("a") as logged:
        process = subprocess.Popen([sys.executable, __file__, "--reader-worker", json.dumps(job)], stdout=logged,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the {job['kind']} reader did not read (see {log})")
            time.sleep(0.05)
        time.sleep(AROUND_S)

        def stop() -> dict[str, Any]:
            time.sleep(AROUND_S)
            process.send_signal(signal.SIGTERM)
            process.wait(60)
            return dict(json.loads(out.read_text()))

        yield stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def summarize(store: str, keys: int, span: tuple[float, float], write: Timer, scan_s: float,
              reads: dict[str, Any]) -> Promotion:  # fmt: skip
    samples: list[tuple[float, float, int]] = [(s[0], s[1], s[2]) for s in reads["samples"]]
    t0, t1 = span
    during = [ms for start, ms, _ in samples if start < t1 and start + ms / 1000 > t0]
    before = [ms for start, ms, _ in samples if start + ms / 1000 <= t0]
    first_new = min((start + ms / 1000 for start, ms, seen in samples if seen == NEW), default=float("inf"))
    answered = sorted(start + ms / 1000 for start, ms, seen in samples if seen in (OLD, NEW, SAME))
    stall = max((b - a for a, b in zip(answered, answered[1:], strict=False)), default=float("nan"))
    return Promotion(
        store,
        keys,
        t1 - t0,
        write.seconds,
        scan_s,
        len(samples),
        sum(1 for *_, seen in samples if seen == FAILED),
        sum(1 for *_, seen in samples if seen == MISSING),
        sum(1 for start, _, seen in samples if seen == OLD and start > first_new),
        max(during, default=float("nan")),
        stall,
        pct(before, 0.99),
        max(before, default=float("nan")),
        reads["errors"],
    )


def redis_promotion(bench: Bench, n: int) -> Promotion:
    """N live keys and a generation of the same N keys of which DIFFERING differ (what `promote`
    changes: a repair), promoted by `promote_redis` while a reader reads."""
    r = bench.redis(socket_timeout=1_800)  # a script's call must not time out (and be sent again)
    r.flushdb(asynchronous=True)
    group = f"{bench.root}-promote"
    shadow = targets.Shadow.make(group, 1, {}, {})
    spec = dataflow("inventory_snapshot")
    patterns = spec.projection(spec.settings()).redis_keys  # what promotion swaps
    fill = r.register_script(_FILL)
    differ = min(DIFFERING, n)
    for first in range(0, n, 20_000):  # a chunk per call: no long block of Redis
        last = min(first + 20_000, n)
        fill(args=["", first, last, OLD])
        if first < differ:
            fill(args=[shadow.redis_prefix, first, min(last, differ), NEW])
        if last > differ:
            fill(args=[shadow.redis_prefix, max(first, differ), last, OLD])
    # the keys that differ, found as `Replays.promote` finds them (`_redis_differences`): both
    # sides' digests, compared
    t0 = time.perf_counter()
    cut = len(shadow.redis_prefix)
    live_side = compare.redis_side(r, targets.scan(r, patterns))
    shadow_side = compare.redis_side(r, [k[cut:] for k in targets.scan(r, patterns, shadow.redis_prefix)],
                                     shadow.redis_prefix)  # fmt: skip
    differing, _, _ = compare.differing_keys(live_side, shadow_side, -(2**62))
    differences_s = time.perf_counter() - t0
    if len(differing) != differ:
        raise BenchError(f"{len(differing):,} keys differ between the generations, not {differ:,}")
    client = TimedScripts(r)
    job = {"kind": "redis", "url": bench.redis_url, "keys": n, "hot": differ}
    with readers(bench, job) as stop, timed(targets, "scan") as scans:
        t0 = time.monotonic()
        swapped = targets.promote_redis(client, shadow, patterns, differing)
        t1 = time.monotonic()
        reads = stop()
    if swapped.get("changed") != differ:
        raise BenchError(f"promote_redis changed {swapped}, not the {differ:,} keys that differ")
    r.flushdb(asynchronous=True)
    out = summarize("redis", n, (t0, t1), client.timer, scans.seconds, reads)
    out.changed, out.differences_s = differ, differences_s
    console.print(f"promote {n:,} Redis keys ({differ:,} differ, found in {differences_s:.1f} s): {out.seconds:.2f} s "
                  f"(script {out.write_s:.2f} s), {out.reads:,} reads, {out.failed} failed, {out.missing} missing, "
                  f"longest {out.longest_ms:.0f} ms, {out.stall_s:.2f} s without an answer")  # fmt: skip
    return out


def store_promotion(bench: Bench, replays: Replays, generation: int, keys: int) -> Promotion:
    """Generation `generation`'s Cassandra table or OpenSearch index put live (one write) while a
    reader reads through the pointer or the alias."""
    record = replays.record(generation)
    write = Timer()
    if record.indices:
        ((alias, index),) = record.indices.items()
        job = {"kind": "opensearch", "url": bench.stack.opensearch.url, "alias": alias, "new": index, "keys": keys}
        with replays._opensearch() as http, readers(bench, job) as stop:
            t0 = time.monotonic()
            targets.promote_index(http, alias, index)
            t1 = time.monotonic()
            reads = stop()
        store = "opensearch"
    else:
        ((logical, physical),) = record.tables.items()
        job = {"kind": "cassandra", "host": bench.stack.cassandra.host, "port": bench.stack.cassandra.port,
               "keyspace": KEYSPACE, "table": logical, "new": physical, "keys": keys}  # fmt: skip
        with replays._cassandra() as (_, session), readers(bench, job) as stop:
            t0 = time.monotonic()
            targets.point_cassandra(session, logical, physical, generation)
            t1 = time.monotonic()
            reads = stop()
        store = "cassandra"
    write.seconds = t1 - t0
    out = summarize(store, keys, (t0, t1), write, 0.0, reads)
    console.print(f"promote {store} ({keys:,} keys): {out.seconds * 1000:.0f} ms, {out.reads:,} reads, "
                  f"{out.failed} failed, {out.missing} missing, longest {out.longest_ms:.0f} ms")  # fmt: skip
    return out


# --- the report ----------------------------------------------------------------------------------------


def where_time_goes(runs: list[Rate], prof: Profile | None, stores: list[Rate], checked: Verify | None,
                    promotions: list[Promotion], busy_ms: int) -> list[str]:  # fmt: skip
    """The section's reading of its own figures."""
    out: list[str] = []
    if runs:
        rates_ = sorted(r.rate for r in runs)
        tops = sorted(r.ceiling for r in runs)
        shares = sorted(r.share for r in runs)
        below = sum(1 for r in runs if r.ceiling < GOAL_RATE)

        def mean_us(value: Callable[[Rate], float]) -> float:
            return sum(1e6 / value(r) for r in runs) / len(runs)

        decode, typed, memory = mean_us(lambda r: r.ceiling), mean_us(lambda r: r.typed), mean_us(lambda r: r.memory)
        loop, total = mean_us(lambda r: r.loop_rate), mean_us(lambda r: r.rate)
        cpu = sum(r.cpu_us for r in runs) / len(runs)
        out.append(
            f"**Rate.** `run()` replays {rates_[0]:,.0f}–{rates_[-1]:,.0f} events/s, "
            f"{shares[0]:.2f}–{shares[-1]:.2f} of the bare consume + decode loop, which itself reaches "
            f"{tops[0]:,.0f}–{tops[-1]:,.0f} events/s here "
            f"({'every input mix' if below == len(runs) else f'{below} of the six input mixes'} below the "
            f"{GOAL_RATE:,} goal before any projection work): the rate is "
            "bound by per-record Python work in the one thread. Per event, on average over the six (µs, wall, each "
            f"loop measured on its own): consume + Avro decode {decode:.1f}; the envelope checks and the typed event "
            f"(`Inputs.event`) {typed - decode:+.1f}; the kernel in memory (`Inputs.item`, `run_batch`, the stages' "
            f"steps) {memory - typed:+.1f}; the shadow's writes and checkpoints (the read loop) {loop - memory:+.1f}; "
            f"`run()`'s set-up (offsets, the generation, shadow targets — Cassandra tables and an OpenSearch index are "
            f"made even where `stores` leaves them out) and its last checkpoint {total - loop:+.1f}; {total:.1f} in "
            f"all, of which {cpu:.1f} µs CPU of this process (the rest: waiting on Kafka, Redis and Cassandra, and the "
            "machine's other load)."
        )
    if prof is not None:
        sink = prof.share("redis") + prof.share("cassandra") + prof.share("opensearch")
        out.append(
            f"Under cProfile ({prof.name}; the profiler inflates function-call-heavy Python, so the split above is the "
            f"truer one) the call goes to: decoding (`Inputs.event`) {prof.share('event'):.0%} — the Avro decode "
            f"{prof.share('decode'):.0%}, the typed event {prof.share('typed'):.0%}; the kernel (`run_batch`) "
            f"{prof.share('kernel'):.0%}, of which the stage's `step` {prof.share('step'):.0%}; the writes "
            f"(`_apply`) {prof.share('apply'):.0%}, of which the sinks {sink:.0%} and retargeting into the shadow "
            f"namespace {prof.share('retarget'):.0%}; Kafka's `consume` {prof.share('kafka'):.0%}; checkpoints "
            f"{prof.share('checkpoint'):.0%}; set-up {prof.share('setup'):.0%}; the rest is the read loop's own "
            "per-record work (partition names, the offset bookkeeping, the watermark clock)."
        )
    if stores:
        names = list(dict.fromkeys(r.name for r in stores))
        text = "; ".join(
            f"{name} with its {STORE_RUNS[name]} shadow "
            + " / ".join(f"{r.rate:,.0f}" for r in stores if r.name == name)
            + f" events/s (two generations; {next(r.writes for r in stores if r.name == name):,} writes each)"
            for name in names
        )
        same = {r.name: r for r in runs}
        base = "; ".join(f"{n} {same[n].rate:,.0f} events/s to Redis alone" for n in names if n in same)
        out.append(
            f"**Store-bound shadows.** {text}, against {base}: the shadow's writes and their acknowledgements "
            "bound these."
        )
    if checked is not None:
        c = checked
        per_key = c.phases["reading + digests"] / max(c.compared, 1) / 2 * 1e6
        out.append(
            f"**Verify.** The comparison reads both sides whole: {c.compared:,} keys × 2, {compare.CHUNK:,} keys per "
            f"script call, {per_key:.0f} µs per key read and digested (`compare.redis_side`, "
            f"{c.phases['reading + digests']:.1f} s of the {c.compare_s:.1f} s); the scans take "
            f"{c.phases['scans']:.1f} s, the shards' sums "
            f"{c.phases['shards']:.1f} s. `verify(live_stopped=True)` adds loading and saving the replay's checkpoint "
            f"({c.verify_phases['checkpoint load']:.1f} s + {c.verify_phases['checkpoint save']:.1f} s for "
            f"{c.keys:,} keys' state). Building the generation: {c.build.rate:,.0f} events/s, "
            f"{c.build.checkpoints.calls} checkpoints taking {c.build.checkpoints.seconds:.1f} s of its "
            f"{c.build.run_s:.1f} s (each one writes every key's state)."
        )
    redis_promotions = [p for p in promotions if p.store == "redis"]
    if redis_promotions:
        text = "; ".join(
            f"{p.keys:,} keys: finding the {p.changed:,} that differ {p.differences_s:.1f} s, then `promote_redis` "
            f"{p.seconds:.1f} s (its scans {p.scan_s:.1f} s, the script {p.write_s:.2f} s), readers without an answer "
            f"for {p.stall_s:.2f} s at most, {p.bad} of {p.reads:,} reads failed" for p in redis_promotions
        )  # fmt: skip
        out.append(
            f"**Promote.** {text}. A read fails past the API's 250 ms timeout and its one retry (so no read lasts much "
            "over 500 ms: the time without an answer is the pause readers see); a script that runs past "
            f"{busy_ms:,} ms makes Redis answer every client `BUSY`, the stack's dataflows too. With the live "
            "dataflow paused, `promote` first finds the keys that differ (both generations' digests, the time above), "
            "so the pause of the live dataflow grows with the projection's size even where the readers' does not. "
            "The OpenSearch alias and the Cassandra pointer are one small write each."
        )
    return out


def report(
    args: argparse.Namespace,
    runs: list[Rate],
    prof: Profile | None,
    stores: list[Rate],
    checked: Verify | None,
    promotions: list[Promotion],
    loads: tuple[float, float],
    busy_ms: int,
) -> str:
    changed = subprocess.run(["git", "status", "--porcelain", "--", "streams", "shopstream"], capture_output=True,
                             text=True, cwd=REPO).stdout.split()[1::2]  # fmt: skip
    tree = f" — with uncommitted changes to {', '.join(changed)}" if changed else ""
    body = ["## Replay (`bench/replay_bench.py`, issue 16)", "", conditions() + tree, ""]
    body += [f"Load average (1 min) of the machine: {loads[0]:.1f} at the start, {loads[1]:.1f} at the end "
             f"({os.cpu_count()} cores, shared with other work during the run).", ""]  # fmt: skip
    for paragraph in (__doc__ or "").split("\n\n")[1:]:
        body += [paragraph.replace("\n", " "), ""]
    body += ["| figure | measured | goal |", "|---|---:|---|"]
    for r in runs:
        body.append(
            f"| replay rate, {r.name} ({r.events:,} events, Redis) | {r.rate:,.0f} events/s ({r.cpu_us:.0f} µs CPU "
            f"per event; {r.share:.2f} of the ceiling) | ≥ {GOAL_RATE:,} events/s: {met(r.rate >= GOAL_RATE)} |"
        )
    for r in runs:
        body.append(f"| ceiling: consume + decode, {r.name}'s topics | {r.ceiling:,.0f} events/s | |")
    for r in stores:
        body.append(
            f"| replay rate, {r.name} with its {STORE_RUNS[r.name]} shadow (generation {r.generation}, "
            f"{r.writes:,} writes) | {r.rate:,.0f} events/s | store-bound: no goal |"
        )
    if checked is not None:
        c = checked
        body += [
            f"| `verify`: comparison of {c.compared:,} Redis keys ({c.keys:,} products; `compare_stores`) | "
            f"{c.compare_s:.1f} s ({c.compared / c.compare_s:,.0f} keys/s), "
            f"{'parity' if c.parity else '**differences**'} | none set |",
            f"| `verify(live_stopped=True)` after {TAMPERED} live keys were tampered with: the keys it lists as "
            f"differing | {len(set(c.tampered) & set(c.listed))} of the {TAMPERED} "
            f"({len(set(c.listed) - set(c.tampered))} others; {c.verify_s:.1f} s) | all {TAMPERED}, no other: "
            f"{met(set(c.tampered) == set(c.listed) and not c.verify_parity)} |",
            f"| replay of {c.keys:,} keys (building the generation verified) | {c.build.rate:,.0f} events/s | "
            f"≥ {GOAL_RATE:,} events/s: {met(c.build.rate >= GOAL_RATE)} |",
        ]
    for p in promotions:
        what = {
            "redis": f"`promote_redis` of {p.keys:,} keys ({p.changed:,} differing)",
            "opensearch": f"OpenSearch alias move ({p.keys:,} documents)",
            "cassandra": f"Cassandra `read_models` pointer ({p.keys:,} rows)",
        }[p.store]
        body.append(
            f"| {what}: failed reads of {p.reads:,} (the longest {p.longest_ms:,.0f} ms, no answer for "
            f"{p.stall_s:.2f} s at most; the call {p.seconds:.2f} s) "
            f"| {p.bad} | {GOAL_FAILED_READS}: {met(p.bad <= GOAL_FAILED_READS)} |"
        )
    if runs:
        body += [
            "",
            f"### Replay rate per projection ({args.events:,} events each, Redis only)",
            "",
            "µs per event (wall) of loops over the same records, each measured on its own: consume + decode (the "
            "ceiling), + the typed events and checks (`Inputs.event`), + the kernel in memory (`ReplayRun` with no "
            "shadow: what `plan` samples), the read loop of `run()` (+ the shadow's writes, checkpoints), all of "
            "`run()` (+ set-up).",
            "",
            "| projection | workload | `run()` events/s | CPU µs/event | ceiling events/s | ceiling CPU µs/event | "
            "share | µs: decode | + typed | + kernel | read loop | `run()` | checkpoints (s) | writes |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in runs:
            body.append(
                f"| {r.name} | {r.what} | {r.rate:,.0f} | {r.cpu_us:.1f} | {r.ceiling:,.0f} | {r.ceiling_cpu_us:.1f} "
                f"| {r.share:.2f} | {1e6 / r.ceiling:.1f} | {1e6 / r.typed:.1f} | {1e6 / r.memory:.1f} | "
                f"{1e6 / r.loop_rate:.1f} | {1e6 / r.rate:.1f} | {r.checkpoints.calls} ({r.checkpoints.seconds:.2f}) "
                f"| {r.writes:,} |"
            )
        for r in stores:
            body.append(
                f"| {r.name} + {STORE_RUNS[r.name]} (gen {r.generation}) | {r.what} | {r.rate:,.0f} | {r.cpu_us:.1f} "
                f"| | | | | | | {1e6 / r.loop_rate:.1f} | {1e6 / r.rate:.1f} | {r.checkpoints.calls} "
                f"({r.checkpoints.seconds:.2f}) | {r.writes:,} |"
            )
    body += ["", "### Where the time goes", ""]
    for paragraph in where_time_goes(runs, prof, stores, checked, promotions, busy_ms):
        body += [paragraph, ""]
    if prof is not None:
        total = prof.parts[0][2] if prof.parts else prof.seconds
        body += [
            f"cProfile of {prof.name}'s replay once more (a new generation of the same {prof.events:,} records): "
            f"{prof.seconds:.1f} s under the profiler ({prof.events / prof.seconds:,.0f} events/s). Cumulative time "
            "by part (nested parts marked ·):",
            "",
            "| part | cumulative s | share |",
            "|---|---:|---:|",
        ]
        body += [f"| {part} | {s:.2f} | {s / total:.0%} |" for _, part, s in prof.parts]
        body += ["", "Top functions by own time:", "", "| function | calls | own s | cumulative s |",
                 "|---|---:|---:|---:|"]  # fmt: skip
        body += [f"| `{f}` | {nc:,} | {tt:.2f} | {ct:.2f} |" for f, nc, tt, ct in prof.own]
        body += ["", "Top functions by cumulative time:", "", "| function | calls | own s | cumulative s |",
                 "|---|---:|---:|---:|"]  # fmt: skip
        body += [f"| `{f}` | {nc:,} | {tt:.2f} | {ct:.2f} |" for f, nc, tt, ct in prof.cumulative]
    if checked is not None:
        c = checked
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in c.phases.items())
        verify_phases = ", ".join(f"{k} {v:.1f} s" for k, v in c.verify_phases.items())
        body += [
            "",
            f"### `verify` over {c.keys:,} keys",
            "",
            f"Generation 1 built in {c.build.run_s:.1f} s ({c.build.rate:,.0f} events/s; {c.build.checkpoints.calls} "
            f"checkpoints in {c.build.checkpoints.seconds:.1f} s), then copied into the live names in {c.copy_s:.1f} s "
            f"(server-side `COPY`). The comparison ({c.compare_s:.1f} s): {phases}. `verify(live_stopped=True)` "
            f"({c.verify_s:.1f} s): {verify_phases}. No live engine runs in the bench, so `compare_stores` is timed "
            "directly; `verify()` with a live dataflow also pauses it (`streams.pause`) and waits for its answer "
            "(about `CHECK_EVERY_S` plus the batch it finishes).",
        ]
    if promotions:
        body += [
            "",
            "### Promotion under readers",
            "",
            "| promotion | keys | differing (finding them s) | call s | scans s | the one write (Redis: the script) s "
            "| reads | failed | missing | "
            "old after new | longest read during it ms | longest without an answer s | before it: p99 / max ms | "
            "errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for p in promotions:
            errors = "; ".join(f"{k} ×{v}" for k, v in sorted(p.errors.items(), key=lambda e: -e[1])[:3]) or "–"
            differing = f"{p.changed:,} ({p.differences_s:.1f})" if p.store == "redis" else ""
            body.append(
                f"| {p.store} | {p.keys:,} | {differing} | "
                f"{p.seconds:.2f} | {p.scan_s:.2f} | {p.write_s:.3f} | {p.reads:,} | "
                f"{p.failed} | {p.missing} | {p.old_after_new} | {p.longest_ms:,.0f} | {p.stall_s:.2f} | "
                f"{p.baseline_p99_ms:.1f} / "
                f"{p.baseline_max_ms:.0f} | {errors} |"
            )
    return "\n".join(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, help="write the section into this file (e.g. bench/RESULTS.md)")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (under 2 minutes)")
    parser.add_argument("--events", type=int, default=300_000, help="events per projection (a multiple of 20,000)")
    parser.add_argument("--verify-keys", type=int, default=1_000_000)
    parser.add_argument("--promote-keys", default="100000,1000000", help="comma-separated generation sizes")
    parser.add_argument("--profile", default="inventory_snapshot", choices=DATAFLOW_NAMES)
    parser.add_argument("--only", help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--reader-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader_worker:
        return reader_worker(json.loads(args.reader_worker))
    # stopped from outside: still clean up (the `finally` below) before going
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.events, args.verify_keys, args.promote_keys = min(args.events, 20_000), 20_000, "10000,20000"
    parts = set(args.only.split(",")) if args.only else set(PARTS)
    if parts - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(parts - set(PARTS)))}")
    stack = StackSettings()
    registry = RegistryClient(stack.registry.url)
    run_id = uuid.uuid4().hex[:6]
    bench = Bench(stack, run_id, Path(stack.home) / "bench" / f"replay-{run_id}", AvroSerde(registry))
    bench.tmp.mkdir(parents=True)
    load = os.getloadavg()[0]
    busy: dict[str, str] = bench.redis().config_get("busy-reply-threshold")  # type: ignore[assignment]
    busy_ms = int(busy.get("busy-reply-threshold", 5000))
    runs: list[Rate] = []
    stores: list[Rate] = []
    prof: Profile | None = None
    checked: Verify | None = None
    promotions: list[Promotion] = []
    try:
        make_stores(bench)
        names = list(DATAFLOW_NAMES) if "rate" in parts else []
        names += [n for n in STORE_RUNS if "stores" in parts and n not in names]
        names += [args.profile] if "profile" in parts and args.profile not in names else []
        runs = rates(bench, names, args.events)
        whats = {r.name: r.what for r in runs}
        if "profile" in parts:
            prof = profile(bench, args.profile, whats[args.profile])
            console.print(f"profile: {prof.events:,} events in {prof.seconds:.1f} s under cProfile")
        search: list[tuple[Replays, int, int]] = []  # (replays, generation to promote, keys) under readers
        if "stores" in parts:
            for name in STORE_RUNS:
                done, replays = store_runs(bench, name, whats[name])
                stores += done
                search.append((replays, done[-1].generation, max(1, args.events // EVENTS_PER_KEY)))
        runs = [r for r in runs if "rate" in parts]
        if "verify" in parts:
            checked = verify(bench, args.verify_keys)
        if "promote" in parts:
            for n in (int(k) for k in args.promote_keys.split(",") if k):
                promotions.append(redis_promotion(bench, n))
            for replays, generation, keys in search:
                promotions.append(store_promotion(bench, replays, generation, keys))
    except BenchError as exc:
        console.print(f"[red]replay bench failed:[/red] {exc}")
        return 1
    finally:
        registry.close()
        clean_up(bench)
    body = report(args, runs, prof, stores, checked, promotions, (load, os.getloadavg()[0]), busy_ms)
    if args.report:
        if args.only:
            console.print("[yellow]--only: not writing the report (it is written by complete runs)[/yellow]")
        else:
            write_section(args.report, "replay", body)
    console.print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
