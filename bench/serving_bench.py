"""Serving reads (needs the stack: `shopstream up`).

GraphQL: `product(id) { … inventory … currentPrice }` at a fixed rate (open loop: latency counts
from when a request was due, so a slow server cannot hide queueing), once answered from the
`gql:product` cache and once with the product's cache entries dropped before every request.

WebSocket: N idle `/ws/orders` connections (each subscribed to its user's personal channel) held
by the one API process (restarted first), with its RSS before and after; then orders placed for those users, and
the time from the order.created record's Kafka timestamp to each subscriber's frame."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
import websockets
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from dev.stack.stack import Stack  # noqa: E402
from serving_api.auth.tokens import issue_token  # noqa: E402
from serving_api.settings import ApiSettings  # noqa: E402

console = Console()
QUERY = "query($id: ID!) { product(id: $id) { id name currentPrice { amount } inventory { available } } }"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summary(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5):.1f} ms, p95 {pct(values, 0.95):.1f} ms, p99 {pct(values, 0.99):.1f} ms"


async def graphql_run(url: str, ids: list[str], rate: float, seconds: float, cache: redis.Redis | None) -> list[float]:
    """Latencies (ms) of `rate` queries/s for `seconds`; with `cache`, drop each product's
    entries just before its query (uncached)."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        start = time.perf_counter()

        async def one(due: float, product_id: str) -> None:
            nonlocal errors
            if cache is not None:
                cache.delete(f"gql:product:{product_id}", f"product:{product_id}")
            try:
                r = await client.post("/graphql", json={"query": QUERY, "variables": {"id": product_id}})
            except httpx.TransportError:
                errors += 1
                return
            if r.status_code != 200 or "errors" in r.json():
                errors += 1
            latencies.append((time.perf_counter() - due) * 1000)

        tasks = []
        n = int(rate * seconds)
        for i in range(n):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.ensure_future(one(due, random.choice(ids))))
        await asyncio.gather(*tasks)
    if errors > n / 100:
        raise SystemExit(f"{errors} of {n} GraphQL requests failed")
    if errors:
        console.print(f"[yellow]{errors} of {n} requests failed[/yellow]")
    return latencies


def api_rss() -> float:
    """MiB of the API process (`python -m serving_api`)."""
    for proc in psutil.process_iter(["cmdline"]):
        if (proc.info["cmdline"] or [])[-2:] == ["-m", "serving_api"]:
            return float(proc.memory_info().rss / 1024**2)
    raise SystemExit("the api is not running")


async def hold_sockets(url: str, tokens: list[str], n: int) -> list[Any]:
    sockets: list[Any] = []
    ws_url = url.replace("http://", "ws://")
    for batch in range(0, n, 250):
        opened = await asyncio.gather(
            *[
                websockets.connect(f"{ws_url}/ws/orders?heartbeat=60&token={tokens[i % len(tokens)]}", open_timeout=60)
                for i in range(batch, min(batch + 250, n))
            ]
        )
        for ws in opened:
            await ws.send(json.dumps({"type": "subscribe", "channel": "personal"}))
        sockets += opened
    for ws in sockets:  # every subscription confirmed
        while json.loads(await ws.recv())["type"] != "subscribed":
            pass
    return sockets


async def fan_out(url: str, sockets: list[Any], users: list[str], tokens: dict[str, str], product: str,
                  orders: int, bootstrap: str) -> list[float]:  # fmt: skip
    """ms from each order.created record's Kafka timestamp to each subscriber's frame."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    topic = "ecommerce.order.order.created.v1"
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
                     for p in parts])  # fmt: skip
    received: list[tuple[str, float]] = []

    async def listen(ws: Any) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "status":
                if frame["status"] == "PENDING":
                    received.append((frame["id"], time.time() * 1000))
                await ws.send(json.dumps({"type": "ack", "id": frame["id"]}))  # as a client should

    listeners = [asyncio.ensure_future(listen(ws)) for ws in sockets]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for i in range(orders):
            user = users[i % len(users)]
            await client.post(
                "/api/v1/orders",
                headers={"Authorization": f"Bearer {tokens[user]}", "Idempotency-Key": uuid.uuid4().hex},
                json={"items": [{"productId": product, "qty": 1}]},
            )
            await asyncio.sleep(0.2)
    await asyncio.sleep(3)
    for task in listeners:
        task.cancel()
    stamps: dict[str, float] = {}
    deadline = time.monotonic() + 10
    while len(stamps) < orders and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            event_id = dict(msg.headers() or []).get("eventId", b"").decode()
            stamps[event_id] = float(msg.timestamp()[1])
    consumer.close()
    return [at - stamps[event_id] for event_id, at in received if event_id in stamps]


async def main_async(args: argparse.Namespace) -> list[str]:
    settings = StackSettings()
    url = settings.api.url
    api = ApiSettings()
    admin = issue_token(api, "USER-bench-admin", ["ADMIN"])
    body = ["## Serving reads (`bench/serving_bench.py`)", "", conditions(), ""]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        ids = []
        for _ in range(args.products):
            product = {"sku": f"BENCH-{uuid.uuid4().hex[:10]}", "name": "bench",
                       "price": {"amount": "9.99", "currency": "USD"}, "stock": 1_000_000}  # fmt: skip
            r = await client.post("/api/v1/products", headers={"Authorization": f"Bearer {admin}"}, json=product)
            r.raise_for_status()
            ids.append(r.json()["id"])
        for product_id in ids:  # warm the gql:product cache
            await client.post("/graphql", json={"query": QUERY, "variables": {"id": product_id}})
    cached = await graphql_run(url, ids, args.rate, args.seconds, None)
    console.print(f"GraphQL cached: {summary(cached)}")
    cache = redis.Redis(host=settings.redis.host, port=settings.redis.port)
    uncached = await graphql_run(url, ids, args.rate, args.seconds, cache)
    console.print(f"GraphQL uncached: {summary(uncached)}")
    body += [f"GraphQL `product(id)` with inventory and current price, {args.rate:g} queries/s for "
             f"{args.seconds:g} s over {args.products} products, open loop:", "",
             f"- cached (`gql:product`): {summary(cached)}",
             f"- uncached (product and aggregate dropped before each query): {summary(uncached)}", ""]  # fmt: skip

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = min(args.sockets, hard - 500)
    run = uuid.uuid4().hex[:6]  # users of their own: no unacknowledged messages of an earlier run
    users = [f"USER-bench-ws-{run}-{i}" for i in range(args.users)]
    tokens = {u: issue_token(api, u, ["CUSTOMER"]) for u in users}
    before = api_rss()
    started = time.perf_counter()
    sockets = await hold_sockets(url, [tokens[u] for u in users], n)
    opened_in = time.perf_counter() - started
    await asyncio.sleep(5)
    after = api_rss()
    console.print(f"{n} sockets: API RSS {before:.0f} → {after:.0f} MiB (opened in {opened_in:.1f} s)")
    lags = await fan_out(url, sockets, users, tokens, ids[0], args.orders, settings.kafka.bootstrap)
    await asyncio.gather(*[ws.close() for ws in sockets], return_exceptions=True)
    console.print(f"fan-out: {summary(lags)} over {len(lags)} deliveries")
    body += [f"WebSocket: {n:,} idle `/ws/orders` connections (personal channels of {args.users} users) held by "
             f"the one API process: RSS {before:.0f} MiB before, {after:.0f} MiB with them "
             f"({(after - before) * 1024 / n:.0f} KiB each; opened in {opened_in:.1f} s). Fan-out: "
             f"{args.orders} orders, each pushed to its user's {n // args.users} sockets; from the "
             f"order.created record's Kafka timestamp to the frame at the client: {summary(lags)} "
             f"({len(lags):,} deliveries, mean {statistics.mean(lags):.1f} ms)."]  # fmt: skip
    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--orders", type=int, default=30)
    args = parser.parse_args()
    # a fresh API process: memory figures from a clean start, nothing held from earlier runs
    stack = Stack(StackSettings())
    stack.down(["api"])
    stack.up(["api"])
    body = asyncio.run(main_async(args))
    write_section(args.report, "serving", "\n".join(body))
    console.print("\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
