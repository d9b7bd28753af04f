"""The serving stores (issue 15): the Cassandra sink's rows/s and the OpenSearch sink's docs/s in
one process against bare client loops in the same run; order placed → visible in Cassandra's
orders_by_customer and product renamed → found by its new name in OpenSearch, each through the
stack's dataflow; `GET /api/v1/customers/me/orders` and `GET /api/v1/products/search` latency at
an open-loop 100 req/s (needs the stack: `shopstream up`).

Sink: N inventory_snapshot rows through `CassandraSink.apply` (prepared, version as the write
timestamp, token-aware unlogged batches of 100, 16 in flight, then the positions) into a keyspace
of the bench's own (`shopstream_bench`, the migration's table), against the same rows as
individual prepared INSERTs through `execute_concurrent_with_args` (64 in flight: the driver's
plain way), CPU of this process per row for both.

Visibility: orders placed through the REST API one after another at a steady rate; from each
201 (the order is committed with its outbox event) to its row read back from Cassandra
(polled every 10 ms per order).

OpenSearch sink: N documents through `OpenSearchSink.apply` (bulks of 1,000, external versions,
then the positions) into an index of the bench's own behind its own alias (the products mapping),
against the same documents as plain `_bulk` requests of 1,000 (no versions, no positions).
Rename → found: a product renamed through the REST API (PATCH), from the 200 to the first search
by the new word that finds it (polled every 10 ms).

Latency: a customer with 30 orders written by the sink; `GET /api/v1/customers/me/orders?limit=20`
at an open-loop 100 req/s for 20 s over 8 keep-alive connections, from each request's scheduled
send time; the same for `GET /api/v1/products/search?q=<word>` over the stack's index (a word that
the bench's 30 products share)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from serving_api.auth.tokens import issue_token  # noqa: E402
from serving_api.settings import ApiSettings  # noqa: E402
from shopstream.runtime.settings import Cassandra, OpenSearch  # noqa: E402
from streams.core import Document, Row  # noqa: E402
from streams.sinks.cassandra import CassandraSink  # noqa: E402

console = Console()
REPO = Path(__file__).resolve().parents[1]
BENCH_KEYSPACE = "shopstream_bench"
GOAL_ROWS = 10_000
GOAL_VISIBLE_P99_MS = 1_000
GOAL_READ_P99_MS = 20
GOAL_DOCS = 5_000
GOAL_SEARCH_P99_MS = 50


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_keyspace(settings: StackSettings) -> None:
    """The migration's inventory_snapshot and projection_progress tables in a keyspace of the bench's own."""
    from cassandra.cluster import Cluster

    cql = (REPO / "migrations" / "cassandra" / "0001_serving_stores.cql").read_text()
    cluster = Cluster([settings.cassandra.host], port=settings.cassandra.port)
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {BENCH_KEYSPACE} "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    code = "\n".join(line.split("--", 1)[0] for line in cql.splitlines())  # comments may hold semicolons
    for statement in code.split(";"):
        body = statement.strip()
        if body.startswith("CREATE TABLE") and ("inventory_snapshot" in body or "projection_progress" in body):
            session.execute(body.replace("shopstream.", f"{BENCH_KEYSPACE}."))
    session.execute(f"TRUNCATE {BENCH_KEYSPACE}.inventory_snapshot")
    cluster.shutdown()


def rows(n: int, version: int) -> list[Row]:
    now = int(time.time() * 1000)
    return [
        Row(
            "inventory_snapshot",
            (("product_id", f"P-bench-{i}"),),
            version,
            {"on_hand": 10, "reserved": 1, "available": 9, "version": version, "updated_at": now},
        )
        for i in range(n)
    ]


def sink_rate(settings: StackSettings, n: int) -> dict[str, float]:
    from cassandra.concurrent import execute_concurrent_with_args

    config = Cassandra(contact_points=settings.cassandra.address, keyspace=BENCH_KEYSPACE)
    sink = CassandraSink(config, f"bench-{uuid.uuid4().hex[:8]}")
    try:
        sink.apply(rows(200, 1), {"warm[0]": 1})  # connections, prepared statements
        out: dict[str, float] = {}
        batch = rows(n, 2)
        t0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, n, 5_000):  # what an engine hands over per batch
            sink.apply(batch[start : start + 5_000], {"bench[0]": start + 5_000})
        out["sink_rows_s"] = n / (time.perf_counter() - t0)
        out["sink_cpu_us"] = (time.process_time() - c0) / n * 1e6
        insert = sink.session.prepare(
            "INSERT INTO inventory_snapshot (product_id, on_hand, reserved, available, version, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        now = int(time.time() * 1000)
        params = [(f"P-bench-{i}", 10, 1, 9, 3, now, 3) for i in range(n)]
        t0, c0 = time.perf_counter(), time.process_time()
        execute_concurrent_with_args(sink.session, insert, params, concurrency=64)
        out["bare_rows_s"] = n / (time.perf_counter() - t0)
        out["bare_cpu_us"] = (time.process_time() - c0) / n * 1e6
        return out
    finally:
        sink.close()


def visibility(settings: StackSettings, count: int, rate: float, progress: Progress) -> list[float]:
    from cassandra.cluster import Cluster

    api = settings.api.url
    user = f"USER-bench-{uuid.uuid4().hex[:8]}"
    api_settings = ApiSettings()
    customer = {"Authorization": f"Bearer {issue_token(api_settings, user, ['CUSTOMER'])}"}
    admin = {"Authorization": f"Bearer {issue_token(api_settings, 'USER-bench-admin', ['ADMIN'])}"}
    cluster = Cluster([settings.cassandra.host], port=settings.cassandra.port)
    session = cluster.connect("shopstream")
    select = session.prepare("SELECT order_id FROM orders_by_customer WHERE customer_id = ?")
    latencies: list[float] = []
    task = progress.add_task("orders placed → visible in Cassandra", total=count)
    with httpx.Client(base_url=api, timeout=30) as http:
        body = {"sku": f"SKU-bench-{uuid.uuid4().hex[:8]}", "name": "bench mug",
                "price": {"amount": "5.00", "currency": "USD"}, "stock": count + 10}  # fmt: skip
        product = http.post("/api/v1/products", headers=admin, json=body).raise_for_status().json()
        seen: set[str] = set()
        for _ in range(count):
            started = time.monotonic()
            r = http.post("/api/v1/orders", headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
                          json={"items": [{"productId": product["id"], "qty": 1}]})  # fmt: skip
            r.raise_for_status()
            order_id, committed = r.json()["id"], time.monotonic()
            deadline = committed + 10
            while order_id not in seen and time.monotonic() < deadline:
                seen |= {row.order_id for row in session.execute(select, (user,))}
                if order_id not in seen:
                    time.sleep(0.01)
            if order_id in seen:
                latencies.append((time.monotonic() - committed) * 1000)
            progress.advance(task)
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
    progress.remove_task(task)
    cluster.shutdown()
    return latencies


async def read_latency(settings: StackSettings, rate: float, seconds: float) -> tuple[list[float], int]:
    user = f"USER-bench-{uuid.uuid4().hex[:8]}"
    config = Cassandra(contact_points=settings.cassandra.address)
    sink = CassandraSink(config, f"bench-{uuid.uuid4().hex[:8]}")
    now = int(time.time() * 1000)
    history = [
        Row(
            "orders_by_customer",
            (("customer_id", user), ("created_at", now - i * 1000), ("order_id", f"ORD-b{i}")),
            1,
            {
                "status": "PENDING",
                "total_minor": 500,
                "currency": "USD",
                "item_count": 1,
                "order_lines": [("P-bench", 1, 500)],
                "status_changed_at": {"PENDING": now - i * 1000},
                "trace_id": "0" * 32,
                "updated_at": now - i * 1000,
                "version": 1,
            },
        )  # fmt: skip
        for i in range(30)
    ]
    sink.apply(history, {})
    sink.close()
    headers = {"Authorization": f"Bearer {issue_token(ApiSettings(), user, ['CUSTOMER'])}"}
    return await open_loop(settings.api.url, "/api/v1/customers/me/orders", {"limit": 20}, headers, rate, seconds,
                           lambda body: len(body["items"]) == 20)  # fmt: skip


def docs(n: int, version: int, word: str = "benchdoc") -> list[Document]:
    return [
        Document(
            "bench-products",
            f"P-bench-{i}",
            version,
            {
                "product_id": f"P-bench-{i}",
                "sku": f"SKU-{i}",
                "name": f"{word} mug {i}",
                "price_minor": 500,
                "currency": "USD",
                "flash_sales": [],
                "version": version,
                "updated_at": int(time.time() * 1000),
            },
        )  # fmt: skip
        for i in range(n)
    ]


def opensearch_sink_rate(settings: StackSettings, n: int) -> dict[str, float]:
    """The sink into `bench-products_v1` (the products mapping) behind the alias `bench-products`."""
    import json

    from streams.sinks.opensearch import OpenSearchSink

    mapping = json.loads((REPO / "migrations" / "opensearch" / "products_v1.json").read_text())
    url = settings.opensearch.url
    with httpx.Client(base_url=url, timeout=60) as http:
        http.delete("/bench-products_v1")
        http.put("/bench-products_v1", json=mapping).raise_for_status()
        http.post("/_aliases", json={"actions": [{"add": {"index": "bench-products_v1", "alias": "bench-products"}}]})
        sink = OpenSearchSink(OpenSearch(url=url), f"bench-{uuid.uuid4().hex[:8]}")
        out: dict[str, float] = {}
        try:
            sink.apply(docs(200, 1), {"warm[0]": 1})
            batch = docs(n, 2)
            t0, c0 = time.perf_counter(), time.process_time()
            for start in range(0, n, 5_000):
                sink.apply(batch[start : start + 5_000], {"bench[0]": start + 5_000})
            out["sink_docs_s"] = n / (time.perf_counter() - t0)
            out["sink_cpu_us"] = (time.process_time() - c0) / n * 1e6
            t0, c0 = time.perf_counter(), time.process_time()
            for start in range(0, n, 1_000):
                lines = []
                for d in batch[start : start + 1_000]:
                    lines.append(json.dumps({"index": {"_index": "bench-products", "_id": d.id}}))
                    lines.append(json.dumps(d.body))
                r = http.post("/_bulk", content="\n".join(lines) + "\n",
                              headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
                r.raise_for_status()
            out["bare_docs_s"] = n / (time.perf_counter() - t0)
            out["bare_cpu_us"] = (time.process_time() - c0) / n * 1e6
        finally:
            sink.close()
            http.delete("/bench-products_v1")
        return out


def rename_visibility(settings: StackSettings, count: int, progress: Progress) -> tuple[list[float], str]:
    """(ms from each rename's 200 to the first search that finds the product by its new word, the
    word all the bench's products share)."""
    admin = {"Authorization": f"Bearer {issue_token(ApiSettings(), 'USER-bench-admin', ['ADMIN'])}"}
    shared = f"benchword{uuid.uuid4().hex[:6]}"
    latencies: list[float] = []
    task = progress.add_task("products renamed → found in OpenSearch", total=count)
    with httpx.Client(base_url=settings.api.url, timeout=30) as http:
        for i in range(count):
            body = {"sku": f"SKU-bench-{uuid.uuid4().hex[:8]}", "name": f"{shared} mug",
                    "price": {"amount": "5.00", "currency": "USD"}, "stock": 5}  # fmt: skip
            product = http.post("/api/v1/products", headers=admin, json=body).raise_for_status().json()
            word = f"renamed{uuid.uuid4().hex[:8]}"
            r = http.patch(f"/api/v1/products/{product['id']}", headers=admin, json={"name": f"{shared} {word} mug"})
            r.raise_for_status()
            renamed, deadline = time.monotonic(), time.monotonic() + 10
            while time.monotonic() < deadline:
                found = http.get("/api/v1/products/search", params={"q": word}).json().get("items", [])
                if any(item["productId"] == product["id"] for item in found):
                    latencies.append((time.monotonic() - renamed) * 1000)
                    break
                time.sleep(0.01)
            progress.update(task, completed=i + 1)
    progress.remove_task(task)
    return latencies, shared


async def open_loop(url: str, path: str, params: dict[str, Any], headers: dict[str, str], rate: float,
                    seconds: float, valid: Any) -> tuple[list[float], int]:  # fmt: skip
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as http:
        for _ in range(20):  # warm
            await http.get(path, headers=headers, params=params)

        async def one(at: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            r = await http.get(path, headers=headers, params=params)
            if r.status_code != 200 or not valid(r.json()):
                errors += 1
            latencies.append((time.perf_counter() - at) * 1000)

        start = time.perf_counter() + 0.1
        await asyncio.gather(*(one(start + i / rate) for i in range(int(rate * seconds))))
    return latencies, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--order-rate", type=float, default=5)
    parser.add_argument("--read-rate", type=float, default=100)
    parser.add_argument("--read-seconds", type=float, default=20)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--renames", type=int, default=30)
    args = parser.parse_args()
    settings = StackSettings()
    with Progress(console=console) as progress:
        task = progress.add_task("Cassandra sink", total=None)
        bench_keyspace(settings)
        sink = sink_rate(settings, args.rows)
        progress.remove_task(task)
        visible = visibility(settings, args.orders, args.order_rate, progress)
        task = progress.add_task(f"GET /customers/me/orders at {args.read_rate:g} req/s", total=None)
        reads, errors = asyncio.run(read_latency(settings, args.read_rate, args.read_seconds))
        progress.remove_task(task)
        task = progress.add_task("OpenSearch sink", total=None)
        search_sink = opensearch_sink_rate(settings, args.docs)
        progress.remove_task(task)
        found, shared = rename_visibility(settings, args.renames, progress)
        time.sleep(2)  # the last renames indexed
        task = progress.add_task(f"GET /products/search at {args.read_rate:g} req/s", total=None)
        searches, search_errors = asyncio.run(
            open_loop(
                settings.api.url,
                "/api/v1/products/search",
                {"q": shared},
                {},
                args.read_rate,
                args.read_seconds,
                lambda body: len(body["items"]) > 0,
            )  # fmt: skip
        )
        progress.remove_task(task)
        # again, last: the first run follows the sink's 100,000 rows (Cassandra flushing them)
        task = progress.add_task("GET /customers/me/orders again", total=None)
        settled, settled_errors = asyncio.run(read_latency(settings, args.read_rate, args.read_seconds))
        progress.remove_task(task)
    v50, v99 = pct(visible, 0.5), pct(visible, 0.99)
    r50, r99 = pct(reads, 0.5), pct(reads, 0.99)
    body = "\n".join(
        [
            "## Serving stores: Cassandra and OpenSearch (`bench/stores_bench.py`)",
            "",
            conditions(),
            "",
            (__doc__ or "").split("\n\n", 1)[1].replace("\n", " "),
            "",
            "| figure | measured | goal |",
            "|---|---:|---|",
            f"| sink rows/s, {args.rows:,} rows (5,000 per apply) | {sink['sink_rows_s']:,.0f} | ≥ {GOAL_ROWS:,}: "
            f"{met(sink['sink_rows_s'] >= GOAL_ROWS)} |",
            f"| bare driver loop rows/s (ceiling) | {sink['bare_rows_s']:,.0f} | |",
            f"| sink / bare | {sink['sink_rows_s'] / sink['bare_rows_s']:.2f} | |",
            f"| CPU µs per row: sink / bare | {sink['sink_cpu_us']:.1f} / {sink['bare_cpu_us']:.1f} | |",
            f"| order 201 → row in orders_by_customer, p50 / p99 ms ({len(visible)} of {args.orders} seen) "
            f"| {v50:.0f} / {v99:.0f} | p99 ≤ {GOAL_VISIBLE_P99_MS:,}: {met(v99 <= GOAL_VISIBLE_P99_MS)} |",
            f"| `GET /customers/me/orders` p50 / p99 ms at {args.read_rate:g} req/s ({len(reads):,} requests, "
            f"{errors} errors) | {r50:.1f} / {r99:.1f} | p99 ≤ {GOAL_READ_P99_MS}: {met(r99 <= GOAL_READ_P99_MS)} |",
            f"| read mean ms | {statistics.mean(reads):.1f} | |",
            f"| the same, run again last ({len(settled):,} requests, {settled_errors} errors) | "
            f"{pct(settled, 0.5):.1f} / {pct(settled, 0.99):.1f} | p99 ≤ {GOAL_READ_P99_MS}: "
            f"{met(pct(settled, 0.99) <= GOAL_READ_P99_MS)} |",
            f"| OpenSearch sink docs/s, {args.docs:,} documents | {search_sink['sink_docs_s']:,.0f} | ≥ {GOAL_DOCS:,}: "
            f"{met(search_sink['sink_docs_s'] >= GOAL_DOCS)} |",
            f"| bare `_bulk` docs/s (ceiling) | {search_sink['bare_docs_s']:,.0f} | |",
            f"| sink / bare | {search_sink['sink_docs_s'] / search_sink['bare_docs_s']:.2f} | |",
            f"| CPU µs per document: sink / bare | {search_sink['sink_cpu_us']:.1f} / "
            f"{search_sink['bare_cpu_us']:.1f} | |",
            f"| product renamed → found by its new name, p50 / p99 ms ({len(found)} of {args.renames} found) "
            f"| {pct(found, 0.5):.0f} / {pct(found, 0.99):.0f} | p99 ≤ {GOAL_VISIBLE_P99_MS:,}: "
            f"{met(pct(found, 0.99) <= GOAL_VISIBLE_P99_MS)} |",
            f"| `GET /products/search` p50 / p99 ms at {args.read_rate:g} req/s ({len(searches):,} requests, "
            f"{search_errors} errors) | {pct(searches, 0.5):.1f} / {pct(searches, 0.99):.1f} | p99 ≤ "
            f"{GOAL_SEARCH_P99_MS}: {met(pct(searches, 0.99) <= GOAL_SEARCH_P99_MS)} |",
        ]
    )
    console.print(body)
    if args.report:
        write_section(args.report, "stores", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
