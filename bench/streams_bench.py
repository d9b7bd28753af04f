"""Dataflow throughput and freshness (needs the stack: `shopstream up`).

Throughput, per dataflow: N Avro events are produced to topics of the bench's own (the dataflow
runs with `topic_prefix`, a fresh consumer group and state, exactly-once on), and the dataflow
process's rate is taken from its committed offsets once it started consuming. The ceiling is a
bare confluent-kafka consume + fastavro decode loop over the same records.

Freshness: with the simulator running, the time from an order.paid event's occurredAt (set in
the payment's transaction, just before its commit) to the moment the revenue window record it
caused is readable on the revenue topic (read_committed). The Redis write of that value happens
in the same checkpoint just before the Kafka commit, so this is an upper bound of the
Postgres-commit → Redis latency."""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from shopstream.domain import EventType, envelope, event_type  # noqa: E402
from shopstream.serde import AvroSerde, RegistryClient  # noqa: E402
from shopstream.stack import StackSettings  # noqa: E402
from streams.settings import DataflowSettings  # noqa: E402

console = Console()
SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
PAID, CANCELED = event_type("ecommerce.order.order.paid.v1"), event_type("ecommerce.order.order.canceled.v1")
ADJUSTED = event_type("ecommerce.inventory.stock.adjusted.v1")
STARTED, ENDED = (
    event_type("ecommerce.pricing.flash_sale.started.v1"),
    event_type("ecommerce.pricing.flash_sale.ended.v1"),
)
REVENUE = event_type("ecommerce.analytics.revenue_window.updated.v1")
DATAFLOWS = ("inventory_snapshot", "revenue_windows", "flash_sale_price_map")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def workload(name: str, n: int, now: int) -> list[tuple[EventType, dict[str, Any], int]]:
    """(event type, payload, event time) × n for one dataflow, event times spread over n/50 s."""
    rnd = random.Random(1)
    out: list[tuple[EventType, dict[str, Any], int]] = []
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
    elif name == "revenue_windows":
        for i in range(n):
            order = f"ORD-bench-{i // 5 * 5 if i % 5 == 4 else i}"
            if i % 5 == 4:  # a fifth are cancellations of an order paid just before
                payload = {"orderId": order, "userId": "U", "reason": "bench", "canceledBy": "U", "releasedItems": []}
                out.append((CANCELED, payload, now + i * 20))
            else:
                amount = {"amountMinor": rnd.randrange(100, 100_000), "currency": rnd.choice(["USD", "EUR", "GBP"])}
                payload = {"orderId": order, "userId": "U", "paymentId": f"PAY{i}", "amount": amount, "paidAt": now}
                out.append((PAID, payload, now + i * 20))
    else:
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
    return out


def produce(bootstrap: str, serde: AvroSerde, prefix: str, events: list[tuple[EventType, dict[str, Any], int]]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = sorted({prefix + e.topic for e, _, _ in events})
    for future in admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1) for t in topics]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000})
    for event, payload, at in events:
        record = envelope(event, payload, producer="bench", correlation_id="bench", trace_id="0" * 32,
                          occurred_at=datetime.fromtimestamp(at / 1000, UTC))  # fmt: skip
        producer.produce(prefix + event.topic, key=record["partitionKey"], value=serde.encode(event.subject, record),
                         timestamp=at)  # fmt: skip
        producer.poll(0)
    producer.flush(60)


def ceiling(bootstrap: str, serde: AvroSerde, topics: list[str], n: int) -> float:
    """events/s of a bare consume + fastavro decode loop over the bench's records."""
    schemas: dict[int, Any] = {}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-ceiling-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe(topics)
    seen, started = 0, 0.0
    while seen < n:
        batch = consumer.consume(10_000, 1.0)
        if batch and not started:
            started = time.perf_counter()
        for msg in batch:
            if msg.error():
                continue
            value = msg.value()
            schema_id = int.from_bytes(value[1:5], "big")
            if schema_id not in schemas:
                schemas[schema_id] = fastavro.parse_schema(__import__("json").loads(serde.registry.schema(schema_id)))
            fastavro.schemaless_reader(io.BytesIO(value[5:]), schemas[schema_id])
            seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return seen / elapsed


def committed(bootstrap: str, group: str, topics: list[str]) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    parts = [TopicPartition(t, p) for t in topics for p in range(3)]
    total = sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    consumer.close()
    return total


def ends(bootstrap: str, topics: list[str]) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ends"})
    total = sum(consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1] for t in topics for p in range(3))
    consumer.close()
    return total


def dataflow_rate(name: str, settings: StackSettings, prefix: str, topics: list[str], tmp: Path) -> tuple[float, float]:
    """(events/s once consuming, CPU seconds of the dataflow process) of one dataflow."""
    import psutil

    group = f"{prefix[:-1]}-{name}"  # the bench's internal topics (changelogs, repartitions) carry it
    env_prefix = f"SHOPSTREAM_{name.upper()}__"
    env = {**os.environ, env_prefix + "TOPIC_PREFIX": prefix, env_prefix + "CONSUMER_GROUP": group,
           env_prefix + "STATE_DIR": str(tmp / name), env_prefix + "REDIS_URL": f"{settings.redis.url[:-1]}3",
           env_prefix + "LOG_LEVEL": "WARNING"}  # fmt: skip
    target = ends(settings.kafka.bootstrap, topics)
    log = (tmp / f"{name}.log").open("w")
    process = subprocess.Popen([SHOPSTREAM, "streams", "run", name], env=env, stdout=log, stderr=log)
    try:
        first_at, first = None, 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = committed(settings.kafka.bootstrap, group, topics)
            now = time.perf_counter()
            if first_at is None and done > 0:
                first_at, first = now, done
            # exactly-once leaves a transaction marker after the last record of each partition
            if done >= target - 3 * len(topics):
                assert first_at is not None
                cpu = psutil.Process(process.pid).cpu_times()
                return (done - first) / max(now - first_at, 1e-9), cpu.user + cpu.system
            time.sleep(0.25)
        raise SystemExit(f"{name} did not finish; see {log.name}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()


def freshness(settings: StackSettings, seconds: float, rate: float) -> tuple[list[float], list[float]]:
    """ms from order.paid occurredAt to its revenue window record being readable, and the part
    of it until the order.paid record itself was readable (the outbox → Debezium hop)."""
    registry = RegistryClient(settings.registry.url)
    serde = AvroSerde(registry)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"bench-fresh-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed"})  # fmt: skip
    parts = []
    for topic in (PAID.topic, REVENUE.topic):
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            parts.append(TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1]))
    consumer.assign(parts)
    simulator = subprocess.Popen([SHOPSTREAM, "simulate", "--rate", str(rate), "--duration", str(seconds)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    paid_at: dict[str, tuple[float, float]] = {}
    lags: list[float] = []
    hops: list[float] = []
    deadline = time.monotonic() + seconds + 5
    while time.monotonic() < deadline:
        for msg in consumer.consume(500, 0.2):
            if msg.error():
                continue
            seen = time.time() * 1000
            record = serde.decode(msg.value())[1]
            if msg.topic() == PAID.topic:
                paid_at[record["traceId"]] = (record["occurredAt"].timestamp() * 1000, seen)
            elif record["payload"]["window"] == "MINUTE" and record["traceId"] in paid_at:
                occurred, paid_seen = paid_at.pop(record["traceId"])
                lags.append(seen - occurred)
                hops.append(paid_seen - occurred)
    simulator.wait(30)
    consumer.close()
    registry.close()
    return lags, hops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--freshness-seconds", type=float, default=60)
    parser.add_argument("--simulator-rate", type=float, default=30)
    parser.add_argument(
        "--only", choices=["inventory_snapshot", "revenue_windows", "flash_sale_price_map", "freshness"]
    )
    args = parser.parse_args()
    settings = StackSettings()
    registry = RegistryClient(settings.registry.url)
    serde = AvroSerde(registry)
    tmp = Path(settings.home) / "bench" / uuid.uuid4().hex[:8]
    tmp.mkdir(parents=True)
    rows = []
    names = [n for n in DATAFLOWS if args.only in (None, n)]
    for name in names:
        prefix = f"bench-{uuid.uuid4().hex[:6]}."
        events = workload(name, args.events, int(time.time() * 1000) - 86_400_000)
        topics = sorted({prefix + e.topic for e, _, _ in events})
        console.print(f"{name}: producing {len(events):,} events to {', '.join(topics)}")
        produce(settings.kafka.bootstrap, serde, prefix, events)
        top = ceiling(settings.kafka.bootstrap, serde, topics, len(events))
        rate, cpu = dataflow_rate(name, settings, prefix, topics, tmp)
        console.print(f"{name}: {rate:,.0f} events/s (ceiling {top:,.0f}/s, {rate / top:.2f} of it)")
        rows.append((name, rate, top, cpu))
        admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
        leftovers = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix) or prefix[:-1] in t]
        admin.delete_topics(leftovers)  # inputs, outputs, dead letters, changelogs, repartitions
    registry.close()
    measure = args.only in (None, "freshness")
    lags, hops = freshness(settings, args.freshness_seconds, args.simulator_rate) if measure else ([], [])
    body = ["## Dataflows (`bench/streams_bench.py`)", "", conditions(), ""]
    body += [f"{args.events:,} events per dataflow on 3-partition topics of the bench's own; one dataflow process, "
             f"exactly-once, {DataflowSettings().commit_interval:g} s commit interval. Ceiling: a bare "
             "confluent-kafka consume + fastavro decode loop over the same records (one process).", "",
             "| dataflow | events/s | ceiling events/s | share of ceiling | dataflow CPU s |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    body += [f"| {n} | {r:,.0f} | {t:,.0f} | {r / t:.2f} | {c:.1f} |" for n, r, t, c in rows]
    body += ["", "Where the time goes (cProfile of inventory_snapshot, ~120 µs of Python per record): the "
             "stateful step with its RocksDB get/set and the snapshot record (envelope, uuid5 id) ~30%, producing "
             "the Avro record to the topic ~20%, the Redis sink ~15%, Avro decoding ~10%, the rest Quix's per-record "
             "dispatch, deserialization and checkpointing. Polling Kafka itself is ~1 µs per record. Quix handles "
             "one record at a time through Python, so 50k events/s (20 µs per record, of which decoding alone takes "
             "~12 µs in the ceiling loop) is out of reach for one process here; revenue_windows is faster per event "
             "because its Redis writes collapse to a few window keys per checkpoint, flash_sale_price_map slower "
             "because each product's map (its sales) is read and written whole."]  # fmt: skip
    if lags:
        body += ["", f"Freshness under the simulator ({args.simulator_rate:g} actions/s for "
                 f"{args.freshness_seconds:g} s, {len(lags)} payments): order.paid occurredAt → its revenue "
                 "window record readable (read_committed; Redis is written just before): "
                 f"p50 {pct(lags, 0.5):.0f} ms, p99 {pct(lags, 0.99):.0f} ms, max {max(lags):.0f} ms, "
                 f"mean {statistics.mean(lags):.0f} ms. Of it, until the order.paid record was readable "
                 f"(outbox → Debezium → Kafka): p50 {pct(hops, 0.5):.0f} ms, "
                 f"p99 {pct(hops, 0.99):.0f} ms."]  # fmt: skip
    if args.report and not args.only:
        write_section(args.report, "streams", "\n".join(body))
    console.print("\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
