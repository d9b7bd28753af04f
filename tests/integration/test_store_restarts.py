"""A serving store killed (kill -9) mid-stream loses nothing: while events keep coming, Cassandra
(inventory_snapshot's second sink) or OpenSearch (product_search_index) is killed and brought
back; the dataflow stops on the failed writes (supervisord restarts it in the stack; here the
test does), resumes from the oldest position over its stores, and every row or document ends at
the last version the log holds — what an uninterrupted run ends with."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from dev.stack.stack import Stack
from shopstream.domain import event_type
from shopstream.serde import AvroSerde
from streams.sinks.cassandra_pointers import cassandra_tables
from tests.integration.flows import ENGINES, FlowProcess, produce
from tests.integration.test_dataflows import topics_of_our_own
from tests.integration.test_serving_stores import kill_and_bring_back
from tests.support import stock_adjusted

pytestmark = pytest.mark.stack

ADJUSTED = event_type("ecommerce.inventory.stock.adjusted.v1")
PRODUCT_UPDATED = event_type("ecommerce.product.product.updated.v1")


@pytest.fixture(scope="module")
def cql(stack: Stack) -> Iterator[Any]:
    from cassandra.cluster import Cluster

    cluster = Cluster([stack.settings.cassandra.host], port=stack.settings.cassandra.port)
    session = cluster.connect("shopstream")
    yield session
    cluster.shutdown()


def in_the_background(make: Any, count: int, seconds: float) -> threading.Thread:
    """`make(i)` for i in range(count), spread over `seconds`: the stream the kill lands in."""

    def run() -> None:
        for i in range(count):
            make(i)
            if i % 100 == 99:
                time.sleep(seconds / count * 100)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def until_settled(flow: FlowProcess, done: Any, timeout: float, what: str) -> None:
    """Restart the flow whenever it stopped (as supervisord does) until `done()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not flow.running():
            flow.start()
        try:
            if done():
                return
        except Exception:  # noqa: BLE001 - the store may still be starting
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f} s: {flow.tail()}")


@pytest.mark.parametrize("engine", ENGINES)
def test_cassandra_killed_mid_stream_ends_with_every_snapshot_row_at_its_last_version(
    stack: Stack, producer: Producer, serde: AvroSerde, cql: Any, tmp_path: Path, flows: list[FlowProcess], engine: str
) -> None:
    prefix = topics_of_our_own(stack, "cass")
    flow = FlowProcess(stack, tmp_path, "inventory_snapshot", engine, prefix, db=7)
    flows.append(flow)
    products = [f"P-ck-{uuid.uuid4().hex[:6]}-{i}" for i in range(200)]
    count = 12_000
    now = int(time.time() * 1000)
    lock = threading.Lock()

    def adjust(i: int) -> None:
        product, version = products[i % len(products)], i // len(products) + 1
        payload = stock_adjusted(product, -1, "RESERVATION", 10_000, version, version)
        with lock:
            produce(producer, serde, ADJUSTED, payload, now + i, prefix)

    final = count // len(products)  # every product's last stockVersion
    table = cassandra_tables(cql).get("inventory_snapshot", "inventory_snapshot")  # a replay may have moved it
    select = cql.prepare(f"SELECT product_id, version, reserved FROM {table} WHERE product_id IN ?")

    def rows() -> dict[str, tuple[int, int]]:
        return {r.product_id: (r.version, r.reserved) for r in cql.execute(select, (products,))}

    flow.start()
    feeder = in_the_background(adjust, count, seconds=10)
    until_settled(flow, lambda: len(rows()) > 0, 90, "the first rows in Cassandra")
    kill_and_bring_back(stack, "cassandra")  # mid-stream: events keep coming
    feeder.join(60)
    producer.flush(30)
    until_settled(
        flow,
        lambda: rows() == {p: (final, final) for p in products},
        240,
        f"every product's row at version {final}",
    )
    redis_versions = [flow.cache.hget(f"inventory:{p}", "version") for p in products]
    assert redis_versions == [str(final)] * len(products)


@pytest.mark.parametrize("engine", ENGINES)
def test_opensearch_killed_mid_stream_ends_with_every_document_at_its_last_version(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess], engine: str
) -> None:
    prefix = topics_of_our_own(stack, "osr")
    flow = FlowProcess(stack, tmp_path, "product_search_index", engine, prefix, db=7)
    flows.append(flow)
    products = [f"P-osr-{uuid.uuid4().hex[:6]}-{i}" for i in range(100)]
    count = 6_000
    now = int(time.time() * 1000)
    lock = threading.Lock()

    def update(i: int) -> None:
        product, version = products[i % len(products)], i // len(products) + 1
        payload = {
            "productId": product,
            "sku": f"SKU-{product}",
            "name": f"restart test {product} v{version}",
            "description": None,
            "price": {"amountMinor": 1_000 + version, "currency": "USD"},
            "priceVersion": 1,
            "active": True,
            "version": version,
            "category": "restart-test",
        }
        with lock:
            produce(producer, serde, PRODUCT_UPDATED, payload, now + i, prefix)

    final = count // len(products)
    search = httpx.Client(base_url=stack.settings.opensearch.url, timeout=10)

    def names() -> dict[str, str]:
        r = search.post("/products/_mget", json={"ids": products})
        return {d["_id"]: d["_source"]["name"] for d in r.json()["docs"] if d.get("found")}

    try:
        flow.start()
        feeder = in_the_background(update, count, seconds=10)
        until_settled(flow, lambda: len(names()) > 0, 90, "the first documents in OpenSearch")
        kill_and_bring_back(stack, "opensearch")
        feeder.join(60)
        producer.flush(30)
        until_settled(
            flow,
            lambda: names() == {p: f"restart test {p} v{final}" for p in products},
            240,
            f"every product's document at version {final}",
        )
    finally:
        search.post(
            "/products/_delete_by_query",
            params={"conflicts": "proceed", "refresh": "true"},
            json={"query": {"terms": {"product_id": products}}},
        )
        search.close()
