"""Dataflow throughput, CPU, freshness and a profile, on both engines (needs the stack: `shopstream up`).

Throughput, per dataflow and engine: N Avro events (encoded once) for topics of the bench's own (a
topic prefix per engine run, 3 partitions each, `create_event_topics`). Each engine runs the
dataflow in one `shopstream streams run NAME --engine E` process with a fresh group, state dir,
dead-letter topic and Redis db (flushed first), started on topics holding one warm-up event; once
it wrote what that makes and idles, the records are produced in one burst. Both engines' Redis sink records the source
positions its writes reflect in the hash `streams:progress:<group>` (`topic[partition]` → next
offset), atomically with the writes: the rate is taken from the first record produced to all
input offsets reflected there. (revenue_windows under Quix records its repartition topic's
partitions, so there the inputs count as done when the group committed them and the repartition
progress reached its end.) Bytewax records an epoch's positions in its sink's snapshot of that
epoch, up to an epoch after the writes, so there the end is the end of the process's last busy
stretch of CPU once the hash covered the inputs (or stood still short of them). The end state in
Redis is checked against the workload. CPU: user + system seconds of the dataflow process over
the same span (it idled before).

Ceiling, on the same topics in the same run: a bare confluent-kafka consume + decode loop in one
process over the same records, with our serde (`AvroSerde.decode(raw=True)`, what the engines run) and with
fastavro's schemaless reader (what the bench reported before).

Freshness: with the simulator running, against the stack's own revenue_windows dataflow (on
whatever engine the stack runs it): order.paid occurredAt (set in the payment's transaction, just
before its commit) → the revenue window record it caused readable on the revenue topic
(read_committed) and → that window's value in Redis; split into the Debezium hop (occurredAt →
the order.paid record) and the dataflow hop (order.paid readable → the window record / Redis).

Profile: cProfile of the Bytewax engine on one dataflow (`--profile`), run in-process (Bytewax's
`run_main`, the single worker on the calling thread) over the bench's topics until their end."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pstats
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import psutil
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from shopstream.domain import EventType, envelope, event_type  # noqa: E402
from shopstream.domain.envelope import epoch_ms  # noqa: E402
from shopstream.runtime.topics import create_event_topics  # noqa: E402
from shopstream.serde import AvroSerde, RegistryClient  # noqa: E402
from streams.core import parse_partition_name, partition_name  # noqa: E402
from streams.settings import DataflowSettings  # noqa: E402

console = Console()
SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
PAID, CANCELED = event_type("ecommerce.order.order.paid.v1"), event_type("ecommerce.order.order.canceled.v1")
CREATED, FULFILLED = event_type("ecommerce.order.order.created.v1"), event_type("ecommerce.order.order.fulfilled.v1")
ADJUSTED = event_type("ecommerce.inventory.stock.adjusted.v1")
PRODUCT_UPDATED = event_type("ecommerce.product.product.updated.v1")
STARTED, ENDED = (
    event_type("ecommerce.pricing.flash_sale.started.v1"),
    event_type("ecommerce.pricing.flash_sale.ended.v1"),
)
REVENUE = event_type("ecommerce.analytics.revenue_window.updated.v1")
DATAFLOWS = ("inventory_snapshot", "revenue_windows", "flash_sale_price_map", "serving_caches")
ENGINES = ("quix", "bytewax")
GOAL_RATE = 50_000  # events/s per process
GOAL_SHARE = 0.5  # of the serde ceiling
GOAL_P99_MS = 300.0
BENCH_DB = 9  # the Redis db of the bench's dataflow runs (flushed before each)
POLL_S = 0.05  # how often the progress hash is read
IDLE_CORES = 0.3  # a dataflow process using less CPU than this is idle (polling), at least
BUSY_SHARE = 0.6  # busy: more than this share of the run's median CPU rate (`CpuMeter`)
WINDOW_S = 0.5  # CPU rates over windows this long (psutil's CPU times tick every 10 ms)
FINE_S = 0.1  # the end of the last busy window, narrowed to windows this long
QUIET_S = 1.0  # revenue_windows on Quix: the progress stands still this long once it covers the inputs
SETTLE_S = 8.0  # no progress for this long without covering the inputs: the run is over (flagged)
# engines whose progress hash lags their writes: Bytewax records the positions of an epoch's end
# in its sink's snapshot of that epoch (`streams.engines.bytewax`), an epoch or two behind
LAGGING = {"bytewax"}
STARTUP_S = 180.0  # from the process start until it reads its inputs and idles


class BenchError(RuntimeError):
    """A step that failed or timed out; the message says which and where to look."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


Workload = list[tuple[EventType, dict[str, Any], int]]


@dataclass
class Expected:
    """What the dataflow's Redis db must hold once every event is in (a check of the end state)."""

    describe: str
    check: Callable[[redis.Redis], str | None]  # None: as expected, else what differs


def warmup(name: str, now: int) -> tuple[EventType, dict[str, Any], int, str]:
    """One event the dataflow's process handles before the burst (so that it is past its start-up:
    assignment, state recovery), about nothing of the workload's, and the Redis key it makes. An
    hour before the day the workload starts in: no window of the workload's is late for it, and
    its 1-day window is another (and it is younger than the topics' retention)."""
    at = now - now % 86_400_000 - 3_600_000
    if name == "inventory_snapshot":
        payload = {"productId": "P-warmup", "delta": -1, "reason": "RESERVATION", "orderId": "O-warmup",
                   "available": 9, "onHand": 10, "reserved": 1, "stockVersion": 1}  # fmt: skip
        return ADJUSTED, payload, at, "inventory:P-warmup"
    if name == "revenue_windows":
        amount = {"amountMinor": 100, "currency": "USD"}
        payload = {"orderId": "ORD-warmup", "userId": "U", "paymentId": "PAY-warmup", "amount": amount, "paidAt": at}
        return PAID, payload, at, f"revenue:1d:USD:{at - at % 86_400_000}"
    if name == "flash_sale_price_map":  # one that ends in an hour (its map stays until then)
        payload = {"saleId": "S-warmup", "productId": "P-warmup", "salePrice": {"amountMinor": 800, "currency": "USD"},
                   "regularPrice": {"amountMinor": 1000, "currency": "USD"}, "startsAt": at,
                   "endsAt": int(time.time() * 1000) + 3_600_000}  # fmt: skip
        return STARTED, payload, at, "flash_price:P-warmup"
    payload = {"productId": "P-warmup", "sku": "SKU-warmup", "name": "warm-up", "description": None,
               "price": {"amountMinor": 1, "currency": "USD"}, "priceVersion": 1, "active": True,
               "version": 1}  # fmt: skip
    return PRODUCT_UPDATED, payload, at, "product:P-warmup:floor"


def workload(name: str, n: int, now: int) -> tuple[Workload, Expected]:
    """(event type, payload, event time) × n for one dataflow, event times spread over n/50 s, and
    what its Redis db must hold in the end."""
    rnd = random.Random(1)
    out: Workload = []
    if name == "inventory_snapshot":
        versions: dict[str, int] = {}
        for i in range(n):
            p = f"P-{rnd.randrange(2_000)}"
            versions[p] = versions.get(p, 0) + 1
            on_hand = 1_000 + rnd.randrange(100)
            payload = {"productId": p, "delta": -1, "reason": "RESERVATION", "orderId": f"O{i}",
                       "available": on_hand - 1, "onHand": on_hand, "reserved": 1,
                       "stockVersion": versions[p]}  # fmt: skip
            out.append((ADJUSTED, payload, now + i * 20))

        def check_inventory(r: redis.Redis) -> str | None:
            pipe = r.pipeline(transaction=False)
            for p in versions:
                pipe.hget(f"inventory:{p}", "version")
            held = [int(v) if v is not None else None for v in pipe.execute()]
            wrong = sum(1 for v, want in zip(held, versions.values(), strict=True) if v != want)
            return f"{wrong} of {len(versions)} inventory:{{productId}} not at their last version" if wrong else None

        return out, Expected(f"{len(versions)} inventory:{{productId}} at their last stockVersion", check_inventory)
    if name == "revenue_windows":
        warm_key = warmup(name, now)[3].encode()
        net = 0
        for i in range(n):
            order = f"ORD-bench-{i // 5 * 5 if i % 5 == 4 else i}"
            if i % 5 == 4:  # a fifth are cancellations of an order paid just before
                payload = {"orderId": order, "userId": "U", "reason": "bench", "canceledBy": "U", "releasedItems": []}
                out.append((CANCELED, payload, now + i * 20))
                net -= 1
            else:
                amount = {"amountMinor": rnd.randrange(100, 100_000), "currency": rnd.choice(["USD", "EUR", "GBP"])}
                payload = {"orderId": order, "userId": "U", "paymentId": f"PAY{i}", "amount": amount, "paidAt": now}
                out.append((PAID, payload, now + i * 20))
                net += 1

        def check_revenue(r: redis.Redis) -> str | None:
            keys = [k for k in r.scan_iter("revenue:1d:*", count=1_000) if k != warm_key]
            orders = sum(int(r.hget(k, "orders") or 0) for k in keys)
            return None if orders == net else f"the 1d windows count {orders:,} orders net, not {net:,}"

        return out, Expected(f"1d windows counting {net:,} orders net of cancellations", check_revenue)
    if name == "flash_sale_price_map":
        for i in range(n):
            p, sale = f"P-{rnd.randrange(2_000)}", f"S{i}"
            if i % 4 == 3:
                ended = {
                    "saleId": f"S{i - 1}",
                    "productId": p,
                    "endsAt": now + 3_600_000,
                    "endedAt": now,
                    "endedBy": "A",
                }
                out.append((ENDED, ended, now + i * 20))
            else:
                payload = {"saleId": sale, "productId": p, "salePrice": {"amountMinor": 800, "currency": "USD"},
                           "regularPrice": {"amountMinor": 1000, "currency": "USD"}, "startsAt": now,
                           "endsAt": now + 3_600_000 + i}  # fmt: skip
                out.append((STARTED, payload, now + i * 20))
        # the sales end a day ago (event time): every flash_price key expires as it is written
        return out, Expected("none (the price maps expire as written: sales of a day ago)", lambda r: None)
    if name == "serving_caches":
        # a fifth product.updated (growing versions), the rest orders through their life: created →
        # paid → fulfilled (or canceled, paid or not); finished orders' status expires as written
        # (their event time is a day ago), so what stays is the open orders' status
        product_versions: dict[str, int] = {}
        open_orders: dict[str, str] = {}  # orderId → status
        made = 0
        for i in range(n):
            at = now + i * 20
            roll = rnd.random()
            if roll < 0.2:
                p = f"P-{rnd.randrange(2_000)}"
                product_versions[p] = product_versions.get(p, 0) + 1
                price = {"amountMinor": 1_000 + rnd.randrange(1_000), "currency": "USD"}
                payload = {"productId": p, "sku": f"SKU-{p}", "name": f"Product {p}", "description": None,
                           "price": price, "priceVersion": 1, "active": True,
                           "version": product_versions[p]}  # fmt: skip
                out.append((PRODUCT_UPDATED, payload, at))
            elif open_orders and (roll > 0.6 or len(open_orders) > 500):
                order = rnd.choice(list(open_orders)) if len(open_orders) < 64 else next(iter(open_orders))
                status = open_orders[order]
                user = f"U{int(order.split('-')[-1]) % 50}"
                if status == "PENDING" and rnd.random() < 0.9:
                    amount = {"amountMinor": 2_000, "currency": "USD"}
                    out.append((PAID, {"orderId": order, "userId": user, "paymentId": f"PAY-{order}",
                                       "amount": amount, "paidAt": at}, at))  # fmt: skip
                    open_orders[order] = "PAID"
                elif status == "PAID" and rnd.random() < 0.8:
                    out.append((FULFILLED, {"orderId": order, "userId": user, "fulfilledAt": at,
                                            "trackingNumber": None}, at))  # fmt: skip
                    del open_orders[order]
                else:
                    out.append((CANCELED, {"orderId": order, "userId": user, "reason": "bench",
                                           "canceledBy": user, "releasedItems": []}, at))  # fmt: skip
                    del open_orders[order]
            else:
                order, user = f"ORD-sc-{made}", f"U{made % 50}"
                made += 1
                item = {"productId": f"P-{rnd.randrange(2_000)}", "qty": 1,
                        "unitPrice": {"amountMinor": 2_000, "currency": "USD"}}  # fmt: skip
                out.append((CREATED, {"orderId": order, "userId": user, "totalAmount": item["unitPrice"],
                                      "items": [item]}, at))  # fmt: skip
                open_orders[order] = "PENDING"

        def check_caches(r: redis.Redis) -> str | None:
            floors = sum(1 for k in r.scan_iter("product:*:floor", count=1_000) if k != b"product:P-warmup:floor")
            pipe = r.pipeline(transaction=False)
            for order in open_orders:
                pipe.hget(f"order_status:{order}", "status")
            statuses = [s.decode() if s is not None else None for s in pipe.execute()]
            wrong = sum(1 for s, want in zip(statuses, open_orders.values(), strict=True) if s != want)
            problems = []
            if floors != len(product_versions):
                problems.append(f"{floors} product floors, not {len(product_versions)}")
            if wrong:
                problems.append(f"{wrong} of {len(open_orders)} open orders' status wrong or missing")
            return "; ".join(problems) or None

        describe = f"{len(product_versions)} product floors, {len(open_orders)} open orders' status"
        return out, Expected(describe, check_caches)
    raise ValueError(f"no workload for {name}")


Encoded = list[tuple[str, bytes, bytes, int]]  # (topic without the prefix, key, value, timestamp ms)


def encode(serde: AvroSerde, events: Workload, progress: Progress) -> Encoded:
    """The workload's records, Avro-encoded once (so that producing them is a quick burst)."""
    task = progress.add_task("encoding the workload", total=len(events))
    out: Encoded = []
    for i, (event, payload, at) in enumerate(events):
        record = envelope(event, payload, producer="bench", correlation_id="bench", trace_id="0" * 32,
                          occurred_at=datetime.fromtimestamp(at / 1000, UTC))  # fmt: skip
        out.append((event.topic, record["partitionKey"].encode(), serde.encode(event.subject, record), at))
        if i % 5_000 == 0:
            progress.update(task, completed=i)
    progress.remove_task(task)
    return out


def produce(bootstrap: str, prefix: str, records: Encoded) -> list[str]:
    """The records on the bench's copy of the event topics (made before: 3 partitions each), as
    fast as the producer goes; the topics' names."""
    failed: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(f"{msg.topic()}: {err}")

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10_000,
                         "queue.buffering.max.messages": 2_000_000,
                         "queue.buffering.max.kbytes": 1_048_576})  # fmt: skip
    for topic, key, value, at in records:
        while True:
            try:
                producer.produce(prefix + topic, key=key, value=value, timestamp=at, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) > 0 or failed:
        raise BenchError(f"producing the workload failed: {failed[:3] or 'not acknowledged within 120 s'}")
    return sorted({prefix + topic for topic, _, _, _ in records})


def ends(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Next offset of every partition of the topics, by `topic[partition]`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ends"})
    try:
        out = {}
        for topic in topics:
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                out[partition_name(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return out
    finally:
        consumer.close()


def ceiling(bootstrap: str, serde: AvroSerde, targets: dict[str, int], how: str, progress: Progress) -> float:
    """events/s of a bare consume + decode loop over the bench's records (`how`: serde | fastavro),
    from the first batch to the last record."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-ceiling-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})  # fmt: skip
    parts = [TopicPartition(*parse_partition_name(p)) for p in targets]
    n = sum(high - max(low, 0) for low, high in (consumer.get_watermark_offsets(tp, timeout=10) for tp in parts))
    decode: Callable[[bytes], Any]
    if how == "serde":

        def decode(value: bytes) -> Any:
            return serde.decode(value, raw=True)  # what the engines run
    else:
        schemas: dict[int, Any] = {}

        def decode(value: bytes) -> Any:
            schema_id = int.from_bytes(value[1:5], "big")
            schema = schemas.get(schema_id)
            if schema is None:
                schema = schemas[schema_id] = fastavro.parse_schema(json.loads(serde.registry.schema(schema_id)))
            return fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)

    consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in parts])
    task = progress.add_task(f"ceiling: consume + {how} decode", total=n)
    seen, started = 0, 0.0
    deadline = time.monotonic() + 60 + n / 2_000
    try:
        while seen < n:
            if time.monotonic() > deadline:
                raise BenchError(f"the {how} ceiling loop read {seen:,} of {n:,} records before its timeout")
            batch = consumer.consume(2_000, 0.02)  # a short wait: a batch not filled does not stall the loop
            if batch and not started:
                started = time.perf_counter()
            for msg in batch:
                if msg.error():
                    continue
                decode(msg.value())
                seen += 1
            progress.update(task, completed=seen)
        return seen / (time.perf_counter() - started)
    finally:
        consumer.close()
        progress.remove_task(task)


@dataclass
class Run:
    """One engine's run of one dataflow."""

    dataflow: str
    engine: str
    events: int
    seconds: float  # from the first record produced to the last one's writes
    cpu_s: float  # of the dataflow process over the same span (it idled before)
    end: str  # how the end was seen
    covered: bool  # the recorded progress reflects every input offset
    shortfall: dict[str, int]  # input partition → offsets not reflected in the progress hash
    check: str | None  # end state: None as expected, else what differs
    targets: dict[str, int]  # input partition → records
    log: Path
    load: float  # the machine's 1-minute load average when the burst started

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def valid(self) -> bool:
        """Every record was in: the hash reflects them all, or the end state is right."""
        return self.covered or self.check is None

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.events * 1e6 if self.events else float("nan")


def flow_env(name: str, engine: str, group: str, prefix: str, state: Path, redis_url: str) -> dict[str, str]:
    env_prefix = f"SHOPSTREAM_{name.upper()}__"
    return {**os.environ, env_prefix + "TOPIC_PREFIX": prefix, env_prefix + "CONSUMER_GROUP": group,
            env_prefix + "STATE_DIR": str(state), env_prefix + "REDIS__URL": redis_url,
            env_prefix + "DEAD_LETTER_TOPIC": f"{prefix}dlq.{name}.{engine}", env_prefix + "ENGINE": engine,
            env_prefix + "LOG_LEVEL": "WARNING",
            # Redis and the topics only: the bench's rows would land in the stack's own Cassandra tables
            env_prefix + "STORES": '["redis"]'}  # fmt: skip


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, stopped (SIGTERM, then SIGKILL) whatever happens."""
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


def cpu_seconds(process: psutil.Process) -> float:
    cpu = process.cpu_times()
    return cpu.user + cpu.system + cpu.children_user + cpu.children_system


class CpuMeter:
    """The dataflow process's CPU time, sampled: how busy it was lately, when it last was busy.

    Busy is relative to the run: more than BUSY_SHARE of its median rate over WINDOW_S windows
    while it processed (an idle process still spends some CPU: Bytewax wakes every few ms and its
    ticking stages every epoch, more so with many keys), and never less than IDLE_CORES."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.samples: list[tuple[float, float]] = [(time.perf_counter(), cpu_seconds(process))]

    def sample(self) -> tuple[float, float]:
        s = (time.perf_counter(), cpu_seconds(self.process))
        self.samples.append(s)
        return s

    def windows(self, after: float, length: float) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        """Consecutive (start, end) samples at least `length` apart, from `after` on."""
        points = [s for s in self.samples if s[0] >= after]
        out = []
        start = points[0] if points else None
        for s in points[1:]:
            assert start is not None
            if s[0] - start[0] >= length:
                out.append((start, s))
                start = s
        return out

    @staticmethod
    def rate(window: tuple[tuple[float, float], tuple[float, float]]) -> float:
        (t0, c0), (t1, c1) = window
        return (c1 - c0) / (t1 - t0)

    def threshold(self, start: float, end: float) -> float:
        """Busy above this: BUSY_SHARE of the median rate between `start` and `end` (processing)."""
        rates = sorted(self.rate(w) for w in self.windows(start, WINDOW_S) if w[1][0] <= end)
        return max(IDLE_CORES, BUSY_SHARE * rates[len(rates) // 2]) if rates else IDLE_CORES

    def idle_for(self, threshold: float = IDLE_CORES) -> float:
        """Seconds since the end of the last WINDOW_S window (counted back from now) above `threshold`."""
        samples, i = self.samples, len(self.samples) - 1
        while i > 0:
            j = i - 1
            while j > 0 and samples[i][0] - samples[j][0] < WINDOW_S:
                j -= 1
            if samples[i][0] - samples[j][0] >= WINDOW_S and self.rate((samples[j], samples[i])) > threshold:
                return samples[-1][0] - samples[i][0]
            i = j
        return samples[-1][0] - samples[0][0]

    def busy_until(self, after: float, threshold: float) -> tuple[float, float]:
        """(time, CPU s) where the process was last busy after `after`: the last WINDOW_S window
        above `threshold`, narrowed to its last FINE_S window above it."""
        busy = [w for w in self.windows(after, WINDOW_S) if self.rate(w) > threshold]
        if not busy:
            return next((s for s in self.samples if s[0] >= after), self.samples[-1])
        start, end = busy[-1]
        fine = [w for w in self.windows(start[0], FINE_S) if w[1][0] <= end[0] and self.rate(w) > threshold]
        return fine[-1][1] if fine else end


def wait_ready(name: str, engine: str, store: redis.Redis, warm_key: str, process: subprocess.Popen[bytes],
               meter: CpuMeter, log: Path) -> None:  # fmt: skip
    """Until the dataflow process has written what the warm-up event makes (it is past its start-up:
    assignment, state recovery) and then used no more than IDLE_CORES of CPU for 1 s."""
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            raise BenchError(f"{name} on {engine} exited with {process.returncode}; {log}:\n{log_tail(log)}")
        if time.monotonic() - started > STARTUP_S:
            raise BenchError(f"{name} on {engine} did not write {warm_key} within {STARTUP_S:.0f} s; {log}")
        meter.sample()
        if store.exists(warm_key) and meter.idle_for() >= 1.0:
            return
        time.sleep(0.1)


def dataflow_rate(
    name: str,
    engine: str,
    settings: StackSettings,
    prefix: str,
    records: Encoded,
    warm: tuple[Encoded, str],
    expected: Expected,
    tmp: Path,
    progress: Progress,
) -> Run:
    """One engine's run of the dataflow: the process started on topics of its own holding one
    warm-up event; once it wrote what that makes and idles, the workload produced in a burst;
    measured from the first record produced to all input offsets reflected in its progress hash
    (or, where the hash stops short, to the end of its last busy stretch of CPU once the hash
    stood still)."""
    group = f"{prefix[:-1]}-{engine}"  # the engine's internal topics (changelogs, repartitions) carry it
    create_event_topics(settings.kafka.bootstrap, prefix)
    store = redis.Redis(host=settings.redis.host, port=settings.redis.port, db=BENCH_DB)
    store.flushdb()
    produce(settings.kafka.bootstrap, prefix, warm[0])
    key = f"streams:progress:{group}"
    redis_url = f"redis://{settings.redis.host}:{settings.redis.port}/{BENCH_DB}"
    state = tmp / f"state-{name}-{engine}"
    env = flow_env(name, engine, group, prefix, state, redis_url)
    log = tmp / f"{name}-{engine}.log"
    n = len(records)
    # where the progress hash does not name the inputs (a second stage's repartition topic under
    # Quix), the inputs are done when the group committed them all
    offsets = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": group})
    task = progress.add_task(f"{name} on {engine}: starting", total=n)
    try:
        with running([SHOPSTREAM, "streams", "run", name, "--engine", engine], env, log) as process:
            meter = CpuMeter(psutil.Process(process.pid))
            wait_ready(name, engine, store, warm[1], process, meter, log)
            progress.update(task, description=f"{name} on {engine}: producing {n:,} records")
            t0, cpu0 = meter.sample()
            load = os.getloadavg()[0]
            topics = produce(settings.kafka.bootstrap, prefix, records)
            targets = ends(settings.kafka.bootstrap, topics)
            inputs = [TopicPartition(*parse_partition_name(p)) for p in targets]
            if sum(targets.values()) != n + 1:
                raise BenchError(f"{prefix}*: {sum(targets.values()):,} records on the inputs, not {n + 1:,}")
            progress.update(task, description=f"{name} on {engine}")
            timeline = [f"{meter.samples[-1][0] - t0:8.3f} s  burst produced"]
            covered_at: tuple[float, float] | None = None
            last_change, last_sum = t0, -1
            repartition_ends: dict[str, int] = {}
            deadline = time.monotonic() + 60 + n / 200
            held: dict[str, int] = {}
            while True:
                if process.poll() is not None:
                    raise BenchError(f"{name} on {engine} exited with {process.returncode}; {log}:\n{log_tail(log)}")
                raw: dict[bytes, bytes] = store.hgetall(key)  # type: ignore[assignment]
                now, cpu = meter.sample()
                held = {k.decode(): int(v) for k, v in raw.items()}
                # not a partition of the records produced: a repartition topic (an input topic the
                # workload has no records on is recorded at 0)
                foreign = [p for p in held if p not in targets and held[p] > 0]
                if foreign:
                    committed = offsets.committed(inputs, timeout=10)
                    done = sum(max(tp.offset, 0) for tp in committed)
                    covered = done >= n + 1
                    if covered:  # and the second stage reached its input's end (a commit marker after it)
                        for p in foreign:
                            if p not in repartition_ends:
                                repartition_ends.update(ends(settings.kafka.bootstrap, [parse_partition_name(p)[0]]))
                        covered = all(held.get(p, 0) >= end - 1 for p, end in repartition_ends.items() if end > 0)
                else:
                    done = sum(min(held.get(p, 0), end) for p, end in targets.items())
                    covered = done >= n + 1
                total = sum(held.values())
                timeline.append(f"{now - t0:8.3f} s  cpu {cpu - cpu0:7.2f} s  reflected {done:>9,}  sum {total:>9,}")
                if total != last_sum:
                    last_change, last_sum = now, total
                    if covered and covered_at is None:
                        covered_at = (now, cpu)
                progress.update(task, completed=min(done, n))
                quiet = now - last_change
                if covered_at is not None and (not foreign or quiet >= QUIET_S):
                    if engine not in LAGGING:
                        end, end_cpu = covered_at
                        how = "progress hash covers the inputs"
                        break
                    busy = meter.threshold(t0, last_change)
                    if meter.idle_for(busy) >= 1.0:
                        end, end_cpu = min(meter.busy_until(t0, busy), covered_at)
                        how = "last busy CPU (the progress hash covered the inputs after it)"
                        break
                busy = meter.threshold(t0, last_change if last_sum > 0 else now)
                worked = last_sum > 0 or meter.busy_until(t0, busy)[0] > t0
                if worked and quiet >= SETTLE_S and meter.idle_for(busy) >= 2.0:  # it stopped short of the inputs' end
                    end, end_cpu = meter.busy_until(t0, busy)
                    if engine not in LAGGING and end < last_change:
                        end, end_cpu = last_change, next(c for t, c in meter.samples if t >= last_change)
                    how = "last busy CPU (the progress hash stopped short)"
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} on {engine} did not finish in time ({done:,} of {n:,} reflected); {log}")
                time.sleep(POLL_S)
            timeline.append(f"{end - t0:8.3f} s  end: {how}")
            (tmp / f"{name}-{engine}.timeline").write_text("\n".join(timeline) + "\n")
            check = expected.check(store)
            shortfall = {p: end_ - held.get(p, 0) for p, end_ in targets.items() if held.get(p, 0) < end_}
            if foreign:
                shortfall = {}  # the inputs are checked by the committed offsets instead
            return Run(name, engine, n, end - t0, end_cpu - cpu0, how, covered_at is not None, shortfall, check,
                       targets, log, load)  # fmt: skip
    finally:
        offsets.close()
        store.close()
        progress.remove_task(task)


def delete_bench_topics(bootstrap: str, prefix: str) -> None:
    """The bench's own topics only: its inputs, outputs, dead letters (they start with the prefix)
    and the engines' changelogs and repartitions (they carry its group names)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    core = prefix[:-1]
    # Quix's own: changelog__<group>--… and repartition__<group>--…, the group being <core>-<engine>
    leftovers = [
        t
        for t in admin.list_topics(timeout=10).topics
        if t.startswith(prefix) or (t.startswith(("changelog__", "repartition__")) and f"__{core}-" in t)
    ]
    if leftovers:
        for future in admin.delete_topics(leftovers, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout=60)
    groups = [f"{core}-{engine}" for engine in ENGINES]
    with contextlib.suppress(KafkaException, ValueError):
        for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout=20)


# --- the profile ---------------------------------------------------------------------------------


def profile_worker(job: dict[str, Any]) -> int:
    """In a child process: the Bytewax engine on `job['name']` in-process under cProfile, every
    input partition read up to `job['limits']`, then the stats to `job['out']`."""
    import cProfile
    from datetime import timedelta

    from bytewax.recovery import RecoveryConfig, init_db_dir
    from bytewax.testing import run_main

    import streams.engines.bytewax as bw
    from streams.catalog import dataflow

    spec = dataflow(job["name"])
    settings = spec.settings()
    engine = bw.BytewaxEngine(spec.projection(settings), settings)
    limits: dict[str, int] = job["limits"]
    read = bw._Partition.next_batch

    def next_batch(self: Any) -> list[Any]:
        if max(self.next, 0) >= limits.get(self.name, 0):  # (OFFSET_BEGINNING until the first record)
            raise StopIteration  # Bytewax: this partition is complete
        return read(self)

    bw._Partition.next_batch = next_batch  # type: ignore[method-assign]
    directory = settings.recovery_dir(job["name"])
    directory.mkdir(parents=True, exist_ok=True)
    init_db_dir(directory, 1)  # type: ignore[no-untyped-call]
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    try:
        run_main(engine.flow, epoch_interval=timedelta(seconds=settings.epoch_interval),
                 recovery_config=RecoveryConfig(str(directory)))  # type: ignore[no-untyped-call]  # fmt: skip
    finally:
        profiler.disable()
        engine.close()
    elapsed = time.perf_counter() - started
    profiler.dump_stats(job["out"])
    Path(job["out"] + ".json").write_text(json.dumps({"seconds": elapsed, "events": sum(limits.values())}))
    return 0


@dataclass
class Profile:
    name: str  # the dataflow
    events: int
    seconds: float
    total_s: float  # own time of every function profiled
    own: list[tuple[str, int, float, float]]  # (function, calls, own s, cumulative s), by own time
    cumulative: list[tuple[str, int, float, float]]
    buckets: list[tuple[str, float]]  # (what, own s), largest first


def label(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name.replace("<built-in method ", "<").replace("<method ", "<")
    for marker in ("site-packages/", str(Path(__file__).resolve().parents[1]) + "/", "lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
    return f"{filename}:{line} {name}"


BUCKETS: list[tuple[str, Callable[[str, str], bool]]] = [
    ("Bytewax's runtime (Rust, between the Python calls)", lambda f, n: "bytewax._bytewax" in n or "run_main" in n),
    ("Avro decode / encode (shopstream.serde)", lambda f, n: f.startswith("<avro codec") or "shopstream/serde" in f),
    ("typed events (from_record, envelope)", lambda f, n: "typed_events" in f or "domain/envelope" in f),
    ("record checks and Items (engines/inputs.py)", lambda f, n: "engines/inputs.py" in f),
    ("the kernel (streams/core.py: replay check, coalesce, Emit.record)", lambda f, n: "streams/core.py" in f),
    (
        "the projection's stages and their rules (streams/<dataflow>.py, the domain)",
        lambda f, n: any(f"streams/{d}.py" in f for d in DATAFLOWS) or "domain/" in f,
    ),
    (
        "Redis sink (script args, redis-py, the socket)",
        lambda f, n: "sinks/redis.py" in f or "/redis/" in f or "_socket" in n,
    ),
    ("topic sink (Avro records)", lambda f, n: "sinks/topic.py" in f),
    ("confluent-kafka calls (consume, produce, flush)", lambda f, n: "cimpl" in n),
    ("uuid: uuid5 record ids", lambda f, n: "uuid" in f or "sha1" in n),
    ("JSON (the Redis script's arguments)", lambda f, n: "json/" in f or "_json" in n),
    ("pickle (recovery snapshots)", lambda f, n: "pickle" in n or "pickle" in f),
    ("the engine adapter (engines/bytewax.py)", lambda f, n: "engines/bytewax.py" in f),
    ("Bytewax's Python side (operators)", lambda f, n: "bytewax/" in f),
]


OTHER = "other (builtins called from all of these)"


def read_profile(name: str, path: Path, events: int, seconds: float, top: int = 12) -> Profile:
    stats = pstats.Stats(str(path))
    entries = [(func, nc, tt, ct) for func, (_cc, nc, tt, ct, _callers) in stats.stats.items()]  # type: ignore[attr-defined]
    entries = [e for e in entries if not e[0][0].endswith("bench/streams_bench.py")]  # the stop-at-the-end wrapper
    total = sum(tt for _, _, tt, _ in entries)
    own = sorted(entries, key=lambda e: e[2], reverse=True)[:top]
    cumulative = sorted(entries, key=lambda e: e[3], reverse=True)[:top]
    buckets: dict[str, float] = {}
    for (filename, _line, function), _nc, tt, _ct in entries:
        what = next((b for b, match in BUCKETS if match(filename, function)), OTHER)
        buckets[what] = buckets.get(what, 0.0) + tt
    return Profile(
        name,
        events,
        seconds,
        total,
        [(label(f), nc, tt, ct) for f, nc, tt, ct in own],
        [(label(f), nc, tt, ct) for f, nc, tt, ct in cumulative],
        sorted(buckets.items(), key=lambda b: b[1], reverse=True),
    )


def profile(name: str, settings: StackSettings, prefix: str, targets: dict[str, int], tmp: Path,
            progress: Progress) -> Profile:  # fmt: skip
    """cProfile of the Bytewax engine on the dataflow, over the bench's records, in a child process."""
    group = f"{prefix[:-1]}-profile"
    store = redis.Redis(host=settings.redis.host, port=settings.redis.port, db=BENCH_DB)
    store.flushdb()
    redis_url = f"redis://{settings.redis.host}:{settings.redis.port}/{BENCH_DB}"
    env = flow_env(name, "bytewax", group, prefix, tmp / f"state-{name}-profile", redis_url)
    out, log = tmp / f"{name}-bytewax.prof", tmp / f"{name}-profile.log"
    job = json.dumps({"name": name, "limits": targets, "out": str(out)})
    n = sum(targets.values())
    task = progress.add_task(f"profiling {name} on bytewax (cProfile)", total=n)
    timeout = STARTUP_S + n / 200
    try:
        with running([sys.executable, __file__, "--profile-worker", job], env, log) as process:
            started = time.monotonic()
            while process.poll() is None:
                if time.monotonic() - started > timeout:
                    raise BenchError(f"the profile run did not finish in {timeout:.0f} s; {log}")
                raw: dict[bytes, bytes] = store.hgetall(f"streams:progress:{group}")  # type: ignore[assignment]
                progress.update(task, completed=sum(int(v) for v in raw.values()))
                time.sleep(0.5)
            if process.returncode != 0:
                raise BenchError(f"the profile run exited with {process.returncode}; {log}:\n{log_tail(log)}")
        result = json.loads(Path(str(out) + ".json").read_text())
        return read_profile(name, out, result["events"], result["seconds"])
    finally:
        store.close()
        progress.remove_task(task)


# --- freshness -----------------------------------------------------------------------------------


@dataclass
class Fresh:
    engine: str
    payments: int = 0  # order.paid records seen
    to_record: list[float] = field(default_factory=list)  # occurredAt → revenue window record readable
    to_redis: list[float] = field(default_factory=list)  # occurredAt → Redis holds that window value
    debezium_ts: list[float] = field(default_factory=list)  # occurredAt → order.paid record timestamp
    debezium: list[float] = field(default_factory=list)  # occurredAt → order.paid readable
    dataflow: list[float] = field(default_factory=list)  # order.paid readable → window record readable
    dataflow_redis: list[float] = field(default_factory=list)  # order.paid readable → Redis holds it
    unresolved_redis: int = 0


def stack_engine(settings: StackSettings) -> str:
    """The engine of the stack's running revenue_windows: what its process said at start (its log),
    else the stack's setting."""
    from dev.stack.components.streams import engine_of

    configured = engine_of("revenue_windows", settings)
    log = Path(settings.home) / "logs" / "stream-revenue-windows.log"
    with contextlib.suppress(OSError):
        for line in reversed(log.read_text(errors="replace").splitlines()):
            if line.startswith("revenue_windows on "):
                return line.split()[2].rstrip(":")
    return configured


def freshness(settings: StackSettings, seconds: float, rate: float, tmp: Path, progress: Progress) -> Fresh:
    """With a simulator of the bench's own running: per payment, the time from its occurredAt to
    the revenue window record it caused (matched by traceId) being readable, and to Redis holding
    that window's value (its version or newer, polled every 20 ms), with the hops in between."""
    from dev.stack.stack import Stack

    status = {s.name: s for s in Stack(settings).status(["stream-revenue-windows"])}
    if not status["stream-revenue-windows"].healthy:
        raise BenchError(f"the stack's revenue_windows is {status['stream-revenue-windows'].state}: shopstream up")
    fresh = Fresh(stack_engine(settings))
    registry = RegistryClient(settings.registry.url)
    serde = AvroSerde(registry)
    cache = redis.Redis(host=settings.redis.host, port=settings.redis.port, db=0)  # the stack's dataflows' db
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"bench-fresh-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})  # fmt: skip
    parts = []
    for topic in (PAID.topic, REVENUE.topic):
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            parts.append(TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1]))
    consumer.assign(parts)
    paid: dict[str, tuple[float, float]] = {}  # traceId → (occurredAt, readable at), ms
    windows: dict[str, tuple[float, int, str]] = {}  # traceId → (readable at, version, redis key), not matched yet
    seen_versions: dict[str, list[tuple[int, float]]] = {}  # redis key → (version, first seen at)
    watching: dict[str, float] = {}  # redis key → until when (ms) it is polled
    waiting: list[tuple[str, int, float, float]] = []  # (key, version, occurredAt, paid readable) not in Redis yet
    task = progress.add_task(f"freshness: simulator at {rate:g}/s, revenue_windows on {fresh.engine}", total=seconds)

    def redis_has(key: str, version: int) -> float | None:
        return next((at for v, at in seen_versions.get(key, []) if v >= version), None)

    def matched(trace: str) -> None:
        occurred, paid_seen = paid.pop(trace)
        window_seen, version, key = windows.pop(trace)
        fresh.to_record.append(window_seen - occurred)
        fresh.dataflow.append(window_seen - paid_seen)
        at = redis_has(key, version)
        if at is None:
            waiting.append((key, version, occurred, paid_seen))
        else:
            fresh.to_redis.append(at - occurred)
            fresh.dataflow_redis.append(at - paid_seen)

    log = tmp / "simulator.log"
    argv = [SHOPSTREAM, "simulate", "--rate", str(rate), "--duration", str(seconds)]
    try:
        with running(argv, dict(os.environ), log) as simulator:
            started = time.monotonic()
            redis_polled = 0.0
            while time.monotonic() - started < seconds + 5:
                msg = consumer.poll(0.01)
                now = time.time() * 1000
                if msg is not None and not msg.error():
                    record = serde.decode(msg.value())[1]
                    trace = record["traceId"]
                    if msg.topic() == PAID.topic:
                        fresh.payments += 1
                        occurred = record["occurredAt"].timestamp() * 1000
                        paid[trace] = (occurred, now)
                        fresh.debezium.append(now - occurred)
                        fresh.debezium_ts.append(msg.timestamp()[1] - occurred)
                        amount = record["payload"]["amount"]
                        start = int(occurred) - int(occurred) % 60_000
                        watch = f"revenue:1m:{amount['currency']}:{start}"
                        watching[watch] = now + 60_000
                        if watch not in seen_versions:  # what it holds before this payment
                            seen_versions[watch] = [(int(cache.hget(watch, "version") or 0), now)]
                    elif record["payload"]["window"] == "MINUTE":
                        p = record["payload"]
                        start = int(epoch_ms(p["windowStart"]))
                        windows[trace] = (now, p["version"], f"revenue:1m:{p['currency']}:{start}")
                    if trace in paid and trace in windows:
                        matched(trace)
                if now - redis_polled >= 20:  # the watched windows' versions, and who was waiting for them
                    redis_polled = now
                    keys = [k for k, until in watching.items() if until > now]
                    pipe = cache.pipeline(transaction=False)
                    for k in keys:
                        pipe.hget(k, "version")
                    for k, v in zip(keys, pipe.execute(), strict=True):
                        version = int(v or 0)
                        if version > seen_versions[k][-1][0]:
                            seen_versions[k].append((version, now))
                    still = []
                    for key, version, occurred, paid_seen in waiting:
                        at = redis_has(key, version)
                        if at is None:
                            still.append((key, version, occurred, paid_seen))
                        else:
                            fresh.to_redis.append(at - occurred)
                            fresh.dataflow_redis.append(at - paid_seen)
                    waiting = still
                    progress.update(task, completed=min(time.monotonic() - started, seconds))
            if simulator.poll() not in (None, 0):
                raise BenchError(f"the simulator exited with {simulator.returncode}; {log}:\n{log_tail(log)}")
        fresh.unresolved_redis = len(waiting)
        return fresh
    finally:
        progress.remove_task(task)
        consumer.close()
        cache.close()
        registry.close()


# --- the report ----------------------------------------------------------------------------------


def summary(values: list[float]) -> str:
    if not values:
        return "| – | – | – | – |"
    return f"| {pct(values, 0.5):.0f} | {pct(values, 0.99):.0f} | {max(values):.0f} | {statistics.mean(values):.0f} |"


def report(
    args: argparse.Namespace,
    runs: list[Run],
    ceilings: dict[str, tuple[float, float]],
    fresh: Fresh | None,
    prof: Profile | None,
    loads: tuple[float, float],
) -> str:
    defaults = DataflowSettings()
    body = ["## Dataflows (`bench/streams_bench.py`)", "", conditions(), ""]
    body += [f"Load average (1 min) of the machine: {loads[0]:.1f} at the start, {loads[1]:.1f} at the end "
             f"({os.cpu_count()} cores, shared with other work during the run).", ""]  # fmt: skip
    body += [
        " ".join(
            [
                f"{args.events:,} events per dataflow (the same records for both engines, encoded once), on",
                "3-partition topics of the bench's own (`create_event_topics` with a prefix per engine run).",
                "Each engine run is one `shopstream streams run NAME --engine E` process with a fresh group,",
                "writing Redis and the projection topics only (inventory_snapshot's Cassandra sink is measured",
                "apart: the bench's rows would land in the stack's own tables),",
                f"state dir, dead-letter topic and Redis db {BENCH_DB} (flushed first), started on topics holding",
                "one warm-up event (an hour before the workload's first day, about nothing of it); once it wrote what",
                f"that makes and then used < {IDLE_CORES:g} of a core for 1 s, the records are produced in one",
                "burst. Rate: from the first record produced to all input offsets reflected in",
                "`streams:progress:<group>` (revenue_windows on Quix: the group committed the inputs and the",
                "repartition topic's progress reached its end). Bytewax's hash records the positions of an",
                "epoch's end in its sink's snapshot of that epoch — up to an epoch after the writes — so for Bytewax",
                f"the end is the end of the process's last busy CPU window ({WINDOW_S:g} s, narrowed to",
                f"{FINE_S:g} s; busy: above {BUSY_SHARE:g} of its median rate while processing, and above",
                f"{IDLE_CORES:g} of a core) once its hash covered the inputs or stood still for {SETTLE_S:g} s.",
                "CPU: the process's user + system time over the same span (it idled before).",
                f"Quix: exactly-once, {defaults.commit_interval:g} s commits; Bytewax: {defaults.batch_size:,}",
                f"records per partition per poll, {defaults.epoch_interval:g} s epochs. Ceiling: a bare",
                "confluent-kafka consume + decode loop over the same records in one process (the first run's",
                "topics, after each engine run with no dataflow of ours running; the best pass), with our serde",
                "(`AvroSerde.decode(raw=True)`, what the engines run; the share is against it) and with fastavro's",
                "schemaless reader. End state: the Redis db checked against the workload after the run.",
            ]
        ),
        "",
        f"### Throughput (goals: ≥ {GOAL_RATE:,} events/s per process, ≥ {GOAL_SHARE:g} of the serde ceiling)",
        "",
        "| dataflow | engine | events/s | ≥ 50k/s | serde ceiling events/s | share | ≥ 0.5 | fastavro ceiling "
        "events/s | end state | load |",
        "|---|---|---:|---|---:|---:|---|---:|---|---:|",
    ]
    for r in runs:
        serde_top, fast_top = ceilings[r.dataflow]
        share = r.rate / serde_top
        state = "as expected" if r.check is None else f"**{r.check}**"
        if not r.covered:
            state += f"; progress hash short by {sum(r.shortfall.values()):,} offsets"
        if not r.valid:
            body.append(f"| {r.dataflow} | {r.engine} | – (not every record was in) | | {serde_top:,.0f} | | | "
                        f"{fast_top:,.0f} | {state} | {r.load:.1f} |")  # fmt: skip
            continue
        body.append(
            f"| {r.dataflow} | {r.engine} | {r.rate:,.0f} | {met(r.rate >= GOAL_RATE)} | "
            f"{serde_top:,.0f} | "
            f"{share:.2f} | {met(share >= GOAL_SHARE)} | {fast_top:,.0f} | {state} | {r.load:.1f} |"
        )
    body += [
        "",
        "### CPU per event (the dataflow process, user + system, over the measured span)",
        "",
        "| dataflow | engine | CPU s | CPU µs/event | wall µs/event | serde ceiling µs/event |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        serde_top, _ = ceilings[r.dataflow]
        body.append(
            f"| {r.dataflow} | {r.engine} | {r.cpu_s:.1f} | {r.cpu_us:,.0f} | {1e6 / r.rate:,.0f} | "
            f"{1e6 / serde_top:,.1f} |"
        )
    short = [r for r in runs if not r.covered]
    if short:
        body += [""] + [
            f"- {r.dataflow} on {r.engine}: its progress hash stood still short of the inputs' end — "
            + ", ".join(f"{p.removeprefix(p.split('.')[0] + '.')} by {k:,}" for p, k in sorted(r.shortfall.items()))
            + f" — for {SETTLE_S:g} s and more after its last write (the end state is checked separately)."
            for r in short
        ]
    if fresh is not None:
        p99 = pct(fresh.to_record, 0.99)
        p99_redis = pct(fresh.to_redis, 0.99)
        body += [
            "",
            f"### Freshness (goal: p99 ≤ {GOAL_P99_MS:.0f} ms) — the stack's revenue_windows on **{fresh.engine}**",
            "",
            " ".join(
                [
                    f"Under a simulator of the bench's own ({args.simulator_rate:g} actions/s for",
                    f"{args.freshness_seconds:g} s, beside the stack's): from each order.paid event's occurredAt",
                    "(set in the payment's transaction, just before its commit) to the revenue window (1 minute)",
                    "record it caused, matched by traceId — a window record carries the trace of the last payment",
                    f"of its batch, so batched payments are not all matched. {fresh.payments} payments seen,",
                    f"{len(fresh.to_record)} matched. Redis: the window key polled every 20 ms until it holds the",
                    "record's version or newer"
                    + (f" ({fresh.unresolved_redis} never seen there)." if fresh.unresolved_redis else "."),
                ]
            ),
            "",
            "| ms | p50 | p99 | max | mean |",
            "|---|---:|---:|---:|---:|",
            "| occurredAt → revenue window record readable (read_committed) " + summary(fresh.to_record),
            "| occurredAt → Redis holds the window value " + summary(fresh.to_redis),
            "| Debezium hop: occurredAt → order.paid record timestamp " + summary(fresh.debezium_ts),
            "| Debezium hop: occurredAt → order.paid readable " + summary(fresh.debezium),
            "| dataflow hop: order.paid readable → window record readable " + summary(fresh.dataflow),
            "| dataflow hop: order.paid readable → Redis holds it " + summary(fresh.dataflow_redis),
            "",
            f"Goal p99 ≤ {GOAL_P99_MS:.0f} ms: record readable p99 {p99:.0f} ms, {met(p99 <= GOAL_P99_MS)}; "
            f"Redis p99 {p99_redis:.0f} ms, {met(p99_redis <= GOAL_P99_MS)}.",
        ]
    if prof is not None:
        rate = prof.events / prof.seconds
        body += [
            "",
            f"### Where the time goes (cProfile, Bytewax on {prof.name})",
            "",
            f"The engine in-process (Bytewax's `run_main`: the one worker on the profiled thread) over the same "
            f"{prof.events:,} records: {prof.seconds:.1f} s under the profiler ({rate:,.0f} events/s, "
            f"{prof.total_s / prof.events * 1e6:,.0f} µs of profiled time per event). Own time by part:",
            "",
            "| part | own s | share |",
            "|---|---:|---:|",
        ]
        body += [f"| {what} | {s:.2f} | {s / prof.total_s:.0%} |" for what, s in prof.buckets if s >= 0.005]
        body += [
            "",
            "Top functions by own time:",
            "",
            "| function | calls | own s | cumulative s |",
            "|---|---:|---:|---:|",
        ]
        body += [f"| `{f}` | {nc:,} | {tt:.2f} | {ct:.2f} |" for f, nc, tt, ct in prof.own]
        body += ["", "Top functions by cumulative time:", "", "| function | calls | own s | cumulative s |"]
        body += ["|---|---:|---:|---:|"] + [
            f"| `{f}` | {nc:,} | {tt:.2f} | {ct:.2f} |" for f, nc, tt, ct in prof.cumulative
        ]
    return "\n".join(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, help="write the section into this file (e.g. bench/RESULTS.md)")
    parser.add_argument("--events", type=int, default=100_000, help="events per dataflow")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (10,000 events, 15 s freshness)")
    parser.add_argument("--freshness-seconds", type=float, default=60)
    parser.add_argument("--simulator-rate", type=float, default=30)
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: quix,bytewax")
    parser.add_argument("--only", help=f"comma-separated parts: {', '.join(DATAFLOWS)}, freshness, profile")
    parser.add_argument("--profile", default="inventory_snapshot", choices=DATAFLOWS, help="the dataflow profiled")
    parser.add_argument("--profile-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_worker:
        return profile_worker(json.loads(args.profile_worker))
    if args.quick:
        args.events, args.freshness_seconds = min(args.events, 10_000), min(args.freshness_seconds, 15)
    engines = [e for e in args.engines.split(",") if e]
    parts = set(args.only.split(",")) if args.only else {*DATAFLOWS, "freshness", "profile"}
    unknown = parts - {*DATAFLOWS, "freshness", "profile"} or set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    settings = StackSettings()
    registry = RegistryClient(settings.registry.url)
    serde = AvroSerde(registry)
    tmp = Path(settings.home) / "bench" / f"streams-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    run_id = uuid.uuid4().hex[:6]
    load = os.getloadavg()[0]
    runs: list[Run] = []
    ceilings: dict[str, tuple[float, float]] = {}
    fresh: Fresh | None = None
    prof: Profile | None = None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn())  # fmt: skip
    try:
        with Progress(*columns, console=console) as progress:
            for name in [n for n in DATAFLOWS if n in parts or (n == args.profile and "profile" in parts)]:
                prefixes: list[str] = []
                try:
                    now = int(time.time() * 1000) - 86_400_000
                    events, expected = workload(name, args.events, now)
                    records = encode(serde, events, progress)
                    *warm_event, warm_key = warmup(name, now)
                    warm = (encode(serde, [tuple(warm_event)], progress), warm_key)  # type: ignore[list-item]
                    console.print(f"{name}: {len(records):,} events; expecting {expected.describe}")
                    targets: dict[str, int] = {}
                    measured: list[Run] = []
                    best = (0.0, 0.0)  # the ceilings, best of one pass after each engine run
                    for engine in engines if name in parts else []:
                        # short: Quix names a repartition topic after the group and every input topic (≤ 255)
                        prefixes.append(prefix := f"bs{run_id}{DATAFLOWS.index(name)}{engine[0]}.")
                        run = dataflow_rate(name, engine, settings, prefix, records, warm, expected, tmp, progress)
                        measured.append(run)
                        targets = targets or run.targets  # the ceilings read the first run's topics
                        # with no dataflow of ours running
                        top = ceiling(settings.kafka.bootstrap, serde, targets, "serde", progress)
                        fast = ceiling(settings.kafka.bootstrap, serde, targets, "fastavro", progress)
                        best = (max(best[0], top), max(best[1], fast))
                    if measured:
                        ceilings[name] = best
                        console.print(
                            f"{name}: ceiling {best[0]:,.0f} events/s (serde), {best[1]:,.0f} events/s (fastavro)"
                        )
                    if not targets:  # the profile alone
                        prefixes.append(prefix := f"bs{run_id}{DATAFLOWS.index(name)}p.")
                        create_event_topics(settings.kafka.bootstrap, prefix)
                        topics = produce(settings.kafka.bootstrap, prefix, warm[0] + records)
                        targets = ends(settings.kafka.bootstrap, topics)
                    for run in measured:
                        runs.append(run)
                        share = run.rate / ceilings[name][0]
                        console.print(
                            f"{name} on {run.engine}: {run.rate:,.0f} events/s (goal ≥ {GOAL_RATE:,}: "
                            f"{met(run.rate >= GOAL_RATE)}), {share:.2f} of the serde ceiling (goal ≥ "
                            f"{GOAL_SHARE:g}: {met(share >= GOAL_SHARE)}), {run.cpu_us:,.0f} µs CPU/event; end: "
                            f"{run.end}; end state {'as expected' if run.check is None else run.check}"
                            + ("" if run.covered else f"; progress short by {sum(run.shortfall.values()):,}")
                        )
                    if name == args.profile and "profile" in parts:
                        data = next((p for p in prefixes if targets and next(iter(targets)).startswith(p)), prefixes[0])
                        prof = profile(name, settings, data, targets, tmp, progress)
                        console.print(f"profile: {prof.events:,} events in {prof.seconds:.1f} s under cProfile")
                finally:
                    for prefix in prefixes:
                        delete_bench_topics(settings.kafka.bootstrap, prefix)
                    for state in tmp.glob(f"state-{name}-*"):
                        shutil.rmtree(state, ignore_errors=True)
            if "freshness" in parts:
                fresh = freshness(settings, args.freshness_seconds, args.simulator_rate, tmp, progress)
    except BenchError as exc:
        console.print(f"[red]streams bench failed:[/red] {exc}")
        return 1
    finally:
        registry.close()
        with contextlib.suppress(redis.RedisError):
            redis.Redis(host=settings.redis.host, port=settings.redis.port, db=BENCH_DB).flushdb()
    body = report(args, runs, ceilings, fresh, prof, (load, os.getloadavg()[0]))
    if args.report:
        if args.only:
            console.print("[yellow]--only: not writing the report (it is written by complete runs)[/yellow]")
        else:
            write_section(args.report, "streams", body)
    console.print(body)
    console.print(f"logs: {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
