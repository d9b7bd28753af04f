"""OLAP figures: landing rate and lag, `dbt build` of the star at 1M orders, and an analyst query.

The bench owns a store of its own (an embedded ClickHouse data directory under .local/bench), so it
never touches the OLAP service's store:

- Landing (needs the stack's Kafka and registry: `shopstream up`): N records on topics of the
  bench's own (Debezium-shaped CDC JSON for orders and order lines, Avro order.paid events) are
  landed by the loader (the OLAP service's, in this process) from a fresh consumer group: the rate
  is records / wall time until all are in the store. Then a steady stream at a fixed rate, and the
  lag of each record: its landing time minus its Kafka write time (batches close every second).
- dbt build: raw tables filled with a synthetic 1M-order history by SQL (30 days, 3 currencies,
  1,000 products with two price versions, ~2.5 lines per order, status history, payments, stock
  adjustments, order events: ~13M raw rows), then `dbt build` (every model, data test and unit
  test) timed, through the service's own runner (driver: chdb).
- Analyst query: revenue by day x category for the last 30 days (fact_order_items x dim_product
  category), p50/p95 over repeated runs."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from olap.builds import DbtRunner, export_profile_values  # noqa: E402
from olap.loader import Loader  # noqa: E402
from olap.settings import OlapSettings  # noqa: E402
from olap.store import StoreLock, connect, create_raw_tables  # noqa: E402
from shopstream.domain import envelope, event_type  # noqa: E402
from shopstream.serde import AvroSerde, RegistryClient  # noqa: E402

console = Console()
PAID = event_type("ecommerce.order.order.paid.v1")
LANDED = "'bench' AS _topic, 0 AS _partition, number AS _offset, now64(3) AS _landed_at"
CDC = "(pk, op, lsn, tx_id, changed_at, deleted, row, _topic, _partition, _offset, _landed_at)"
ANALYST_QUERY = """
SELECT order_date, category, currency, sum(line_total_minor) AS revenue_minor, uniqExact(order_id) AS orders
FROM analytics.fact_order_items
WHERE order_status IN ('PAID', 'FULFILLED') AND order_date >= today() - 30
GROUP BY order_date, category, currency
ORDER BY order_date, category, currency
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def iso(expr: str) -> str:
    return f"formatDateTime(toDateTime64({expr}, 6, 'UTC'), '%Y-%m-%dT%H:%i:%S.%fZ')"


def fill(template: str, **values: str) -> str:
    """`@NAME@` placeholders (the SQL is full of JSON braces, so no str.format)."""
    for name, value in values.items():
        template = template.replace(f"@{name}@", value)
    return template


def synthetic_history(orders: int, products: int = 1000) -> list[str]:
    """INSERT ... SELECT statements that fill the raw tables with a Debezium-shaped history."""
    created = f"now64(6) - toIntervalSecond(cityHash64(number, 1) % {30 * 86400})"
    status = "['PAID','PAID','PAID','PAID','PAID','FULFILLED','FULFILLED','CANCELED','PENDING','PENDING']" \
             "[cityHash64(number, 2) % 10 + 1]"  # fmt: skip
    currency = "['USD','EUR','GBP'][number % 3 + 1]"
    total = "toInt64(500 + cityHash64(number, 3) % 20000)"
    order = f"""SELECT number, concat('ORD-', toString(number)) AS id, {created} AS created, {status} AS status,
        {currency} AS currency, {total} AS total FROM numbers({orders})"""
    order_row = """concat('{"id":"', id, '","user_id":"U-', toString(number % 50000), '","status":"', @S@,
        '","total_minor":', toString(total), ',"currency":"', currency, '","correlation_id":"c","version":', @V@,
        ',"created_at":"', @C@, '","updated_at":"', @C@, '"}')"""
    lines = f"""SELECT number, line, concat('ORD-', toString(number)) AS id, {created} AS created,
        concat('P-', toString(cityHash64(number, line) % {products})) AS product,
        toInt32(1 + (number + line) % 3) AS qty,
        toInt64(100 + cityHash64(number, line, 9) % 5000) AS price
        FROM numbers({orders}) ARRAY JOIN range(1, toUInt32(2 + number % 4)) AS line"""
    product = f"""SELECT number, concat('P-', toString(number)) AS id,
        ['apparel','electronics','home','grocery','toys'][number % 5 + 1] AS category FROM numbers({products})"""
    ts40, ts15 = iso("now64(6) - toIntervalDay(40)"), iso("now64(6) - toIntervalDay(15)")
    return [
        f"""INSERT INTO raw.cdc_products {CDC} SELECT id, 'r', number + 1, NULL, now64(3), 0,
            concat('{{"id":"', id, '","sku":"SKU-', toString(number), '","name":"Product ', toString(number),
            '","description":null,"category":"', category, '","active":true,"version":2,"created_at":"', {ts40},
            '","updated_at":"', {ts15}, '"}}'), {LANDED} FROM ({product})""",
        f"""INSERT INTO raw.cdc_product_price_history {CDC} SELECT concat(id, '|', toString(v)), 'r', v, NULL,
            now64(3), 0, concat('{{"product_id":"', id, '","version":', toString(v), ',"amount_minor":',
            toString(1000 + number * 7 + v), ',"currency":"USD","valid_from":"', if(v = 1, {ts40}, {ts15}),
            '","valid_to":', if(v = 1, concat('"', {ts15}, '"'), 'null'), ',"changed_by":"admin"}}'), {LANDED}
            FROM ({product}) ARRAY JOIN [1, 2] AS v""",
        f"""INSERT INTO raw.cdc_inventory_stock {CDC} SELECT id, 'r', 1, NULL, now64(3), 0,
            concat('{{"product_id":"', id, '","on_hand":1000000000,"reserved":0,"version":1,"updated_at":"', {ts40},
            '"}}'), {LANDED} FROM ({product})""",
        f"""INSERT INTO raw.cdc_orders {CDC} SELECT id, 'c', number * 2 + 10, NULL, created, 0,
            {fill(order_row, S="'PENDING'", V="'1'", C=iso("created"))}, {LANDED} FROM ({order})""",
        f"""INSERT INTO raw.cdc_orders {CDC} SELECT id, 'u', number * 2 + 11, NULL, created, 0,
            {fill(order_row, S="status", V="'2'", C=iso("created"))}, {LANDED} FROM ({order})
            WHERE status != 'PENDING'""",
        f"""INSERT INTO raw.cdc_order_items {CDC} SELECT concat(id, '|', toString(line)), 'c', number * 8 + line, NULL,
            created, 0, concat('{{"order_id":"', id, '","line":', toString(line), ',"product_id":"', product,
            '","qty":', toString(qty), ',"unit_price_minor":', toString(price), '}}'), {LANDED} FROM ({lines})""",
        f"""INSERT INTO raw.cdc_order_status_history {CDC} SELECT toString(number * 2 + k), 'c', number * 2 + k,
            NULL, created, 0, concat('{{"id":', toString(number * 2 + k), ',"order_id":"', id, '","from_status":',
            if(k = 1, 'null', '"PENDING"'), ',"to_status":"', if(k = 1, 'PENDING', status),
            '","changed_by":"U","reason":null,"changed_at":"', {iso("created + toIntervalSecond(k * 60)")}, '"}}'),
            {LANDED} FROM ({order}) ARRAY JOIN [1, 2] AS k WHERE k = 1 OR status != 'PENDING'""",
        f"""INSERT INTO raw.cdc_payments {CDC} SELECT concat('PAY-', id), 'c', number + 1, NULL, created, 0,
            concat('{{"id":"PAY-', id, '","order_id":"', id, '","amount_minor":', toString(total), ',"currency":"',
            currency, '","status":"APPROVED","gateway":"rest-sim","gateway_ref":null,"created_at":"',
            {iso("created + toIntervalSecond(120)")}, '"}}'), {LANDED} FROM ({order})
            WHERE status IN ('PAID', 'FULFILLED')""",
        f"""INSERT INTO raw.cdc_inventory_adjustment {CDC} SELECT toString(number + 1), 'c', number + 1, NULL,
            now64(3), 0, concat('{{"id":', toString(number + 1), ',"product_id":"P-', toString(number),
            '","delta":1000000000,"reason":"RESTOCK","order_id":null,"created_at":"', {ts40}, '"}}'), {LANDED}
            FROM numbers({products})""",
        f"""INSERT INTO raw.cdc_inventory_adjustment {CDC} SELECT toString({products} + number * 8 + line), 'c',
            {products} + number * 8 + line, NULL, created, 0,
            concat('{{"id":', toString({products} + number * 8 + line),
            ',"product_id":"', product, '","delta":', toString(-qty), ',"reason":"RESERVATION","order_id":"', id,
            '","created_at":"', {iso("created")}, '"}}'), {LANDED} FROM ({lines})""",
        f"""INSERT INTO raw.events SELECT concat('created-', id), 'ecommerce.order.order.created.v1', '1.0', 1, id,
            created, 'order-service', 'c', 't', concat('{{"orderId":"', id, '","total":{{"amountMinor":',
            toString(total), ',"currency":"', currency, '"}}}}'), {LANDED} FROM ({order})""",
        f"""INSERT INTO raw.events SELECT concat('paid-', id), 'ecommerce.order.order.paid.v1', '1.0', 2, id,
            created + toIntervalSecond(120), 'order-service', 'c', 't', concat('{{"orderId":"', id,
            '","amount":{{"amountMinor":', toString(total), ',"currency":"', currency, '"}}}}'), {LANDED}
            FROM ({order}) WHERE status IN ('PAID', 'FULFILLED')""",
        f"""INSERT INTO raw.events SELECT concat('canceled-', id), 'ecommerce.order.order.canceled.v1', '1.0', 3, id,
            created + toIntervalSecond(60), 'order-service', 'c', 't', concat('{{"orderId":"', id, '"}}'), {LANDED}
            FROM ({order}) WHERE status = 'CANCELED'""",
    ]


def dbt_bench(settings: OlapSettings, orders: int, runs: int) -> dict[str, float]:
    lock = StoreLock(settings.path)
    lock.acquire()
    try:
        client = connect(settings)
        create_raw_tables(client)
        started = time.monotonic()
        for statement in synthetic_history(orders):
            client.command(statement, settings={"max_insert_threads": 2})
        generated = time.monotonic() - started
        raw_rows = sum(
            int(client.command(f"SELECT count() FROM raw.{t}"))
            for t in client.query("SELECT name FROM system.tables WHERE database = 'raw'").result_columns[0]
        )
        console.print(f"{raw_rows:,} raw rows for {orders:,} orders generated in {generated:.1f}s")
        export_profile_values(settings)
        runner = DbtRunner(settings)
        runner.invoke(["parse"])
        builds = []
        for _ in range(runs):
            outcome = runner.invoke(["build"])
            assert outcome.success, "\n".join(outcome.log_tail[-30:])
            builds.append(outcome.seconds)
            console.print(f"dbt build: {outcome.seconds:.1f}s ({len(outcome.nodes)} nodes)")
        slowest = sorted(runner.last.nodes if runner.last else (), key=lambda n: -n.seconds)[:4]
        reader = connect(settings, settings={"readonly": "2"})
        reader.query(ANALYST_QUERY)  # warm
        times = []
        for _ in range(30):
            t = time.perf_counter()
            reader.query(ANALYST_QUERY)
            times.append((time.perf_counter() - t) * 1000)
        marts = int(client.command("SELECT count() FROM analytics.fact_orders"))
        assert marts == orders, marts
        return {
            "raw_rows": raw_rows,
            "build_s": statistics.median(builds),
            "build_max_s": max(builds),
            "query_p50_ms": pct(times, 0.5),
            "query_p95_ms": pct(times, 0.95),
            "slowest": ", ".join(f"{n.node.split('.')[-1]} {n.seconds:.1f}s" for n in slowest),  # type: ignore[dict-item]
        }
    finally:
        lock.release()


def landing_bench(stack: StackSettings, settings: OlapSettings, records: int, steady_rate: int) -> dict[str, float]:
    prefix = settings.topic_prefix
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap})
    topics = [prefix + t for t in ("cdc.public.orders", "cdc.public.order_items", PAID.topic)]
    for future in admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1) for t in topics]).values():
        future.result(10)
    registry = RegistryClient(stack.registry.url)
    serde = AvroSerde(registry)
    producer = Producer({"bootstrap.servers": stack.kafka.bootstrap, "linger.ms": 20, "batch.num.messages": 10000})

    def produce(n: int, tag: str) -> None:
        now = int(time.time() * 1000)
        kind = n % 3
        if kind == 2:
            payload = {"orderId": f"ORD-{tag}{n}", "userId": "U", "paymentId": f"PAY-{n}",
                       "amount": {"amountMinor": 1000 + n, "currency": "USD"}, "paidAt": now}  # fmt: skip
            record = envelope(PAID, payload, producer="bench", correlation_id="bench", trace_id="0" * 32)
            producer.produce(topics[2], key=record["partitionKey"], value=serde.encode(PAID.subject, record))
            return
        key = {"id": f"ORD-{tag}{n}"} if kind == 0 else {"order_id": f"ORD-{tag}{n}", "line": 1}
        row = {**key, "status": "PENDING", "total_minor": 1000 + n, "currency": "USD", "qty": 1}
        value = {"before": None, "after": row, "op": "c", "source": {"lsn": n, "ts_ms": now, "txId": n}}
        producer.produce(topics[kind], key=json.dumps(key), value=json.dumps(value))
        producer.poll(0)

    for n in range(records):
        produce(n, "bulk-")
    producer.flush(60)
    lock = StoreLock(settings.path)
    lock.acquire()
    stop = threading.Event()
    client = connect(settings)
    create_raw_tables(client)
    loader = Loader(settings, connect(settings), serde)
    thread = threading.Thread(target=loader.run, args=(stop,), daemon=True)
    try:
        started = time.monotonic()
        thread.start()
        while loader.stats.records < records:
            time.sleep(0.05)
        rate = records / (time.monotonic() - started)
        console.print(f"landing: {records:,} records at {rate:,.0f}/s")
        # steady: records written at a fixed rate, each one's lag from its write to its landing
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 20:
            due = t0 + n / steady_rate
            time.sleep(max(0.0, due - time.monotonic()))
            produce(n, "steady-")
            n += 1
        producer.flush(10)
        while loader.stats.records < records + n:
            time.sleep(0.05)
        lags = [
            float(v)
            for (v,) in client.query(
                "SELECT dateDiff('millisecond', changed_at, _landed_at) FROM raw.cdc_orders "
                "WHERE startsWith(pk, 'ORD-steady-')"
            ).result_rows
        ]
    finally:
        stop.set()
        thread.join(30)
        loader.client.close()
        client.close()
        lock.release()
        admin.delete_topics(topics)
        registry.close()
    return {"rate": rate, "lag_p50_ms": pct(lags, 0.5), "lag_p99_ms": pct(lags, 0.99), "steady": steady_rate}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--builds", type=int, default=2)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--steady-rate", type=int, default=2_000)
    parser.add_argument("--only", choices=["landing", "dbt"])
    args = parser.parse_args()
    stack = StackSettings()
    root = Path(stack.home) / "bench" / f"olap-{uuid.uuid4().hex[:8]}"
    landing: dict[str, float] = {}
    built: dict[str, float] = {}
    try:
        if args.only in (None, "landing"):
            base = OlapSettings(
                path=root / "landing",
                dbt_work_dir=root / "landing-dbt",
                kafka={"bootstrap": stack.kafka.bootstrap},
                registry={"url": stack.registry.url},
                topic_prefix=f"bench-olap-{uuid.uuid4().hex[:6]}.",
                consumer_group=f"bench-olap-{uuid.uuid4().hex[:6]}",
            )
            landing = landing_bench(stack, base, args.records, args.steady_rate)
        if args.only in (None, "dbt"):
            built = dbt_bench(OlapSettings(path=root / "dbt", dbt_work_dir=root / "dbt-work"), args.orders, args.builds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    body = ["## OLAP (`bench/olap_bench.py`)", "", conditions(), ""]
    if landing:
        body += [f"Landing: {args.records:,} records (Debezium-shaped CDC JSON for orders and order lines, Avro "
                 f"order.paid events; 3-partition topics of the bench's own) landed by the OLAP loader from a fresh "
                 f"consumer group into the embedded store: **{landing['rate']:,.0f} records/s**. Then "
                 f"{landing['steady']:,} records/s for 20 s: landing lag (Kafka write → row in the store, 1 s "
                 f"batches) p50 {landing['lag_p50_ms']:,.0f} ms, p99 {landing['lag_p99_ms']:,.0f} ms.", ""]  # fmt: skip
    if built:
        body += [f"`dbt build` of the whole project (staging views, 7 marts, every data and unit test) at "
                 f"{args.orders:,} orders ({built['raw_rows']:,} raw rows: 30 days, 3 currencies, 1,000 products, "
                 f"~2.5 lines per order, status history, payments, stock adjustments, order events) on the "
                 f"embedded engine: **{built['build_s']:.1f} s** (median of {args.builds}; max "
                 f"{built['build_max_s']:.1f} s; goal ≤ 60 s). Slowest nodes: {built['slowest']}.", "",
                 f"Analyst query, revenue by day × category × currency for the last 30 days "
                 f"(fact_order_items, ~{args.orders * 5 // 2:,} lines): p50 **{built['query_p50_ms']:.0f} ms**, "
                 f"p95 {built['query_p95_ms']:.0f} ms over 30 runs."]  # fmt: skip
    if args.report and not args.only:
        write_section(args.report, "olap", "\n".join(body))
    console.print("\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
