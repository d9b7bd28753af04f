"""The replay service on the platform's own stack, through the operator's tool (`shopstream replay`)
and the public API, over the log a storefront workload left: the simulator's orders (placed, paid,
canceled, fulfilled) and an admin's changes (products renamed, stock adjusted, flash sales started
and ended):

- every projection rebuilt from the log (`run`) has 100% parity with the live one (`verify`);
- a live value tampered with in each store (Redis, Cassandra, OpenSearch) is reported with its key
  and both values, and promoting the rebuilt generation repairs it (seen through the API);
- `promote` while the simulator runs fails no read, and afterwards a new rebuild still has parity
  with the live projection, whose inventory equals Postgres's: nothing missed, nothing twice;
- a replay sends nothing to a webhook subscriber or an open WebSocket;
- `explain` lists exactly a product's adjustments, and its re-fold equals the stored value;
- a run from `--since` misses a product whose events are all before it; `run --reseed` re-reads
  the stock from Postgres (Debezium's incremental snapshot) and has it, with the live values."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from cassandra.cluster import Cluster

from dev.simulators.storefront import run as simulate
from dev.stack.cassandra_migrations import KEYSPACE
from dev.stack.stack import Stack
from streams import DATAFLOW_NAMES
from tests.e2e.test_ws import frames_until, socket
from tests.integration.api_client import Storefront
from tests.integration.flows import SHOPSTREAM
from tests.integration.test_webhooks import Receiver, subscribe, unsubscribe
from tests.support import eventually

ALL = DATAFLOW_NAMES


def replay(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHOPSTREAM, "replay", *args, "--json"], capture_output=True, text=True, timeout=timeout)


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, f"exit {done.returncode}: {done.stdout[-3000:]} {done.stderr[-3000:]}"
    return json.loads(done.stdout)


def rebuilt_with_parity(name: str) -> dict[str, Any]:
    built = answer(replay("run", name))
    assert built["status"] == "built", built
    checked = answer(replay("verify", name))
    assert checked["parity"] is True, json.dumps(checked["stores"])[:3000]
    return checked


@pytest.fixture(scope="module")
def workload(stack: Stack, shop: Storefront) -> dict[str, Any]:
    """The simulator's orders, and an admin's renames, stock adjustments and flash sales."""
    tally = asyncio.run(simulate(stack.settings.api.url, rate=25, duration=12, users=8, products=6, seed=16))
    assert tally.calls.get("pay 200", 0) > 3, tally.calls
    products = [shop.product(stock=20, amount="10.00", category="replay") for _ in range(3)]
    admin = shop.auth("admin")
    for n, p in enumerate(products):
        renamed = shop.http.patch(f"/api/v1/products/{p['id']}", headers=admin, json={"name": f"Replayed mug {n}"})
        assert renamed.status_code == 200, renamed.text
        for delta in (5, -2):
            adjusted = shop.http.post(
                f"/api/v1/products/{p['id']}/stock/adjustments",
                headers=admin,
                json={"delta": delta, "reason": "MANUAL"},
            )
            assert adjusted.status_code in (200, 201), adjusted.text
    now = datetime.now(UTC)
    sale = {
        "productId": products[0]["id"],
        "salePrice": {"amount": "7.50", "currency": "USD"},
        "startsAt": (now - timedelta(seconds=5)).isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
    }
    started = shop.http.post("/api/v1/flash-sales", headers=admin, json=sale)
    assert started.status_code == 201, started.text
    ended = shop.http.post(f"/api/v1/flash-sales/{started.json()['id']}/end", headers=admin)
    assert ended.status_code == 200, ended.text
    shop.http.post("/api/v1/flash-sales", headers=admin, json={**sale, "productId": products[1]["id"]})
    # an order of our own, placed, paid and fulfilled; another canceled
    user = f"USER-replay-{uuid.uuid4().hex[:6]}"
    from serving_api.auth.tokens import issue_token
    from serving_api.settings import ApiSettings

    shop.tokens[user] = issue_token(ApiSettings(), user, ["CUSTOMER"])
    kept = shop.order(user, [(products[2]["id"], 2)])
    assert kept.status_code == 201, kept.text
    assert shop.http.post(f"/api/v1/orders/{kept.json()['id']}/pay", headers=shop.auth(user)).status_code == 200
    assert shop.http.post(f"/api/v1/orders/{kept.json()['id']}/fulfill", headers=admin, json={}).status_code == 200
    dropped = shop.order(user, [(products[1]["id"], 1)])
    assert shop.http.post(f"/api/v1/orders/{dropped.json()['id']}/cancel", headers=shop.auth(user)).status_code == 200
    return {"products": products, "user": user, "order": kept.json()["id"]}


def test_every_projection_rebuilt_from_the_log_has_full_parity_with_the_live_one(workload: dict[str, Any]) -> None:
    for name in ALL:
        checked = rebuilt_with_parity(name)
        assert checked["stores"], name
        if name != "flash_sale_price_map":  # the workload's sales are over or expired: maybe no key left
            assert all(store["keys"] > 0 for store in checked["stores"]), (name, checked["stores"])


def test_a_value_tampered_with_in_each_store_is_reported_and_promotion_repairs_it(
    stack: Stack, shop: Storefront, cache: redis.Redis, workload: dict[str, Any]
) -> None:
    product = workload["products"][0]["id"]
    # Redis: inventory_snapshot's hash
    answer(replay("run", "inventory_snapshot"))
    cache.hset(f"inventory:{product}", "available", "999999")
    found = replay("verify", "inventory_snapshot")
    assert found.returncode == 2, found.stderr[-2000:]
    (redis_store,) = [s for s in json.loads(found.stdout)["stores"] if s["store"] == "redis"]
    # (only this one on a fresh stack; a run that failed before its promotion leaves its own)
    (difference,) = [d for d in redis_store["differences"] if d["key"] == f"inventory:{product}"]
    assert difference["live"]["value"]["available"] == "999999"
    assert difference["shadow"]["value"]["available"] != "999999"
    refused = replay("promote", "inventory_snapshot")
    assert refused.returncode == 1 and "differs from the live one" in refused.stderr
    answer(replay("promote", "inventory_snapshot", "--accept-differences"))
    assert cache.hget(f"inventory:{product}", "available") == difference["shadow"]["value"]["available"]

    # OpenSearch: product_search_index's document, through the alias
    answer(replay("run", "product_search_index"))
    with httpx.Client(base_url=stack.settings.opensearch.url, timeout=30) as search:
        held = search.get(f"/products/_doc/{product}").json()
        tampered = {**held["_source"], "name": "Tampered"}
        search.put(
            f"/products/_doc/{product}",
            params={"version": held["_version"], "version_type": "external_gte", "refresh": "true"},
            json=tampered,
        ).raise_for_status()
    found = replay("verify", "product_search_index")
    assert found.returncode == 2, found.stderr[-2000:]
    (difference,) = [d for d in json.loads(found.stdout)["stores"][0]["differences"] if d["key"] == product]
    assert difference["live"]["source"]["name"] == "Tampered"
    assert difference["shadow"]["source"]["name"] == "Replayed mug 0"
    answer(replay("promote", "product_search_index", "--accept-differences"))
    eventually(
        lambda: [i["name"] for i in shop.http.get("/api/v1/products/search", params={"q": "Replayed"}).json()["items"]],
        timeout=10,
        what="the search",
    )
    names = [i["name"] for i in shop.http.get("/api/v1/products/search", params={"q": "Tampered"}).json()["items"]]
    assert names == []

    # Cassandra: orders_by_customer's row, read through the API (which follows read_models)
    answer(replay("run", "orders_by_customer"))
    user, order = workload["user"], workload["order"]
    with Cluster(["127.0.0.1"], port=stack.settings.cassandra.port) as cluster:
        session = cluster.connect(KEYSPACE)
        (table,) = [
            r.physical for r in session.execute("SELECT physical FROM read_models WHERE name = 'orders_by_customer'")
        ] or ["orders_by_customer"]
        (row,) = [
            r
            for r in session.execute(
                f"SELECT order_id, created_at, version FROM {table} WHERE customer_id = %s", [user]
            )
            if r.order_id == order
        ]
        # the same write timestamp as the row's version, and a value that wins the tie
        session.execute(
            f"UPDATE {table} USING TIMESTAMP %s SET status = 'ZZZ' WHERE customer_id = %s AND created_at = %s"
            " AND order_id = %s",
            [row.version, user, row.created_at, order],
        )
    headers = shop.auth(user)

    def status() -> str:
        items = shop.http.get("/api/v1/customers/me/orders", headers=headers).json()["items"]
        (found,) = [i for i in items if i["orderId"] == order]
        return str(found["status"])

    assert status() == "ZZZ"
    found = replay("verify", "orders_by_customer")
    assert found.returncode == 2, found.stderr[-2000:]
    (difference,) = [
        d for d in json.loads(found.stdout)["stores"][0]["differences"] if d["live"] and d["live"]["order_id"] == order
    ]
    assert difference["live"]["status"] == "ZZZ" and difference["shadow"]["status"] == "FULFILLED"
    answer(replay("promote", "orders_by_customer", "--accept-differences"))
    eventually(lambda: status() == "FULFILLED", timeout=10, what="the order history read from the promoted table")


@pytest.fixture
def readers(stack: Stack, shop: Storefront, cache: redis.Redis, workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Reads of every promoted projection in a loop: the order history (Cassandra), the search
    (OpenSearch), the inventory snapshot (Redis, as the API's GraphQL reads it)."""
    seen: dict[str, Any] = {"reads": 0, "failed": []}
    stop = threading.Event()
    user = workload["user"]
    products = [p["id"] for p in workload["products"]]

    def loop() -> None:
        with httpx.Client(base_url=stack.settings.api.url, timeout=10) as http:
            headers = shop.auth(user)
            while not stop.is_set():
                for what, call in (
                    ("history", lambda: http.get("/api/v1/customers/me/orders", headers=headers)),
                    ("search", lambda: http.get("/api/v1/products/search", params={"q": "Replayed"})),
                ):
                    r = call()
                    ok = r.status_code == 200 and r.json()["items"]
                    if not ok:
                        seen["failed"].append((what, r.status_code, r.text[:200]))
                for p in products:
                    if not cache.hgetall(f"inventory:{p}"):
                        seen["failed"].append(("inventory", p, "no snapshot"))
                seen["reads"] += 2 + len(products)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join(30)


@pytest.mark.timeout(600)
def test_promote_under_a_running_simulator_fails_no_read_and_misses_or_doubles_nothing(
    stack: Stack, cache: redis.Redis, workload: dict[str, Any], readers: dict[str, Any]
) -> None:
    done: dict[str, Any] = {}
    traffic = threading.Thread(
        target=lambda: done.update(
            tally=asyncio.run(simulate(stack.settings.api.url, rate=20, duration=25, users=8, products=6, seed=17))
        )
    )
    traffic.start()
    # one projection per store kind: Redis + Cassandra, OpenSearch (orders_by_customer's pointer:
    # the tamper test)
    promoted = ("inventory_snapshot", "product_search_index")
    try:
        for name in promoted:
            rebuilt_with_parity(name)
            answer(replay("promote", name))
    finally:
        traffic.join(120)
    assert done["tally"].calls.get("pay 200", 0) > 0
    assert readers["reads"] > 50 and readers["failed"] == [], readers["failed"][:10]
    for name in promoted:  # the live ones went on from the promoted positions: a new rebuild equals them
        rebuilt_with_parity(name)

    # and the inventory equals Postgres's, product by product
    async def stock() -> dict[str, tuple[int, int]]:
        conn = await asyncpg.connect(stack.settings.postgres.dsn)
        try:
            rows = await conn.fetch("SELECT product_id, on_hand, reserved FROM inventory_stock")
            return {r["product_id"]: (r["on_hand"], r["reserved"]) for r in rows}
        finally:
            await conn.close()

    def equal() -> list[str]:
        held = asyncio.run(stock())
        wrong = []
        for product, (on_hand, reserved) in held.items():
            snap = cache.hgetall(f"inventory:{product}")
            if snap and (int(snap["onHand"]), int(snap["reserved"])) != (on_hand, reserved):
                wrong.append(product)
        return wrong

    eventually(lambda: equal() == [], timeout=30, what="the inventory snapshot equal to Postgres")


def test_a_replay_sends_nothing_to_a_webhook_subscriber_or_an_open_websocket(
    stack: Stack, shop: Storefront, workload: dict[str, Any]
) -> None:
    receiver = Receiver()
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(receiver.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    subscription = subscribe(shop, receiver, "replay", ["ecommerce.order.order.paid.v1"])
    product = shop.product(stock=3)
    try:
        with socket(stack, shop, "alice") as ws:
            ws.send(json.dumps({"type": "subscribe", "channel": "personal"}))
            frames_until(ws, lambda f: f["type"] == "subscribed")
            order = shop.order("alice", [(product["id"], 1)]).json()["id"]
            assert shop.http.post(f"/api/v1/orders/{order}/pay", headers=shop.auth("alice")).status_code == 200
            frames_until(ws, lambda f: f["type"] == "status" and f["orderId"] == order and f["status"] == "PAID")
            eventually(lambda: receiver.posts("replay"), timeout=60, what="the paid order's webhook")
            time.sleep(2)
            before = len(receiver.posts("replay"))
            for name in ("serving_caches", "orders_by_customer", "revenue_windows"):
                answer(replay("run", name))
            time.sleep(3)
            frames = []
            ws.send(json.dumps({"type": "ping"}))
            while True:
                frame = json.loads(ws.recv(timeout=5))
                if frame["type"] == "pong":
                    break
                frames.append(frame)
            assert [f for f in frames if f.get("orderId") == order] == [], frames
            assert len(receiver.posts("replay")) == before, "a replay made a webhook fire again"
    finally:
        unsubscribe(shop, subscription)
        server.shutdown()
        server.server_close()


def test_explain_lists_exactly_a_products_adjustments_and_refolds_its_stored_value(
    stack: Stack, workload: dict[str, Any]
) -> None:
    product = workload["products"][1]["id"]
    explained = answer(replay("explain", "inventory_snapshot", product))
    events = explained["events"]
    assert events and all(e["eventType"] == "ecommerce.inventory.stock.adjusted.v1" for e in events)
    assert {e["topic"] for e in events} == {"ecommerce.inventory.stock.adjusted.v1"}

    async def adjustments() -> int:
        conn = await asyncpg.connect(stack.settings.postgres.dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM inventory_adjustment WHERE product_id = $1", product))
        finally:
            await conn.close()

    # one event per adjustment row (a redelivered copy shares its event id)
    assert len({e["eventId"] for e in events}) == asyncio.run(adjustments())
    assert explained["equal"] is True, explained["values"]
    slots = {v["slot"] for v in explained["values"]}
    assert f"inventory:{product}" in slots
    assert any(v["slot"].startswith("cql inventory_snapshot") for v in explained["values"])


def test_when_the_log_read_is_not_enough_a_reseed_from_postgres_covers_every_product(
    stack: Stack, shop: Storefront, cache: redis.Redis, workload: dict[str, Any]
) -> None:
    """A run from `--since` an instant after a product's last stock event misses the product;
    `run --reseed` re-reads inventory_stock through Debezium's incremental snapshot and has it,
    with the live values. The units held by orders (the top products ranking) are not in a stock
    row: they come from the log read only, the one difference left."""
    admin = shop.auth("admin")
    early = shop.product(stock=7)["id"]
    assert shop.http.post(
        f"/api/v1/products/{early}/stock/adjustments", headers=admin, json={"delta": 3, "reason": "MANUAL"}
    ).is_success
    eventually(lambda: cache.hget(f"inventory:{early}", "onHand") == "10", 60, "the early product's snapshot")
    time.sleep(1.5)
    since = datetime.now(UTC).isoformat()
    late = shop.product(stock=4)["id"]
    eventually(lambda: cache.hget(f"inventory:{late}", "onHand") == "4", 60, "the late product's snapshot")

    def differing(checked: dict[str, Any]) -> dict[str, set[str]]:
        return {s["store"]: {d["key"] for d in s["differences"]} for s in checked["stores"] if s["differing"]}

    built = []
    try:
        built.append(answer(replay("run", "inventory_snapshot", "--since", since)))
        assert built[-1]["seeded"] == 0
        from_log = replay("verify", "inventory_snapshot")
        assert from_log.returncode == 2, from_log.stderr[-2000:]
        missing = differing(json.loads(from_log.stdout))
        assert f"inventory:{early}" in missing["redis"] and f"inventory:{late}" not in missing["redis"]

        built.append(answer(replay("run", "inventory_snapshot", "--since", since, "--reseed")))

        async def stocked() -> int:
            conn = await asyncpg.connect(stack.settings.postgres.dsn)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM inventory_stock WHERE version > 0"))
            finally:
                await conn.close()

        assert built[-1]["seeded"] >= asyncio.run(stocked())
        reseeded = replay("verify", "inventory_snapshot")
        assert reseeded.returncode in (0, 2), reseeded.stderr[-2000:]
        checked = json.loads(reseeded.stdout)
        assert set(differing(checked)) <= {"redis"}, json.dumps(checked["stores"])[:3000]
        assert differing(checked).get("redis", set()) <= {"top_products:ordered"}, json.dumps(checked["stores"])[:3000]
        # the early product is in the rebuilt projection now, equal to the live one (not listed)
        assert all(s["keys"] > 0 for s in checked["stores"])
    finally:
        for b in built:
            replay("drop", "inventory_snapshot", "-g", str(b["generation"]))
