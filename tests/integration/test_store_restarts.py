"""A serving store killed (kill -9) mid-stream loses nothing: while events keep coming, Cassandra
(inventory_snapshot's second sink) or OpenSearch (product_search_index) is killed and brought
back; the dataflow stops on the failed writes (supervisord restarts it in the stack; here the
test does), resumes from the oldest position over its stores, and every row or document ends at
the last version the log holds — what an uninterrupted run ends with.

Each store is killed once with a dataflow of every engine streaming into it (each from topics of
its own): a JVM store takes a minute to come back, so one kill per engine would double that."""

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

from dev.stack.cassandra_migrations import KEYSPACE, apply_cql_migrations
from dev.stack.stack import Stack
from shopstream.domain import event_type
from shopstream.serde import AvroSerde
from streams.sinks.cassandra_pointers import cassandra_tables
from tests.integration.flows import ENGINES, FlowProcess, produce
from tests.integration.test_dataflows import topics_of_our_own
from tests.integration.test_serving_stores import kill_and_bring_back, products_index
from tests.support import eventually, stock_adjusted

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


def until_settled(flows: list[FlowProcess], done: Any, timeout: float, what: str) -> None:
    """Restart a flow whenever it stopped (as supervisord does) until `done(flow)` holds for
    every flow."""
    deadline = time.monotonic() + timeout
    pending = list(flows)
    while time.monotonic() < deadline:
        for flow in list(pending):
            if not flow.running():
                flow.start()
            try:
                if done(flow):
                    pending.remove(flow)
            except Exception:  # noqa: BLE001 - the store may still be starting
                pass
        if not pending:
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f} s: " + " | ".join(f.tail() for f in pending))


def engine_runs(
    stack: Stack, tmp: Path, flows: list[FlowProcess], dataflow: str, tag: str, per: int
) -> list[tuple[FlowProcess, list[str]]]:
    """A dataflow process per engine, each on topics and a Redis database of its own, with the
    ids of the `per` products it is fed."""
    runs = []
    for db, engine in enumerate(ENGINES, start=7):
        prefix = topics_of_our_own(stack, f"{tag}-{engine}")
        flow = FlowProcess(stack, tmp, dataflow, engine, prefix, db=db)
        flows.append(flow)
        runs.append((flow, [f"P-{tag}-{engine[0]}{uuid.uuid4().hex[:6]}-{i}" for i in range(per)]))
    return runs


def test_cassandra_killed_mid_stream_ends_with_every_snapshot_row_at_its_last_version(
    stack: Stack, producer: Producer, serde: AvroSerde, cql: Any, tmp_path: Path, flows: list[FlowProcess]
) -> None:
    count, per = 12_000, 200
    now = int(time.time() * 1000)
    lock = threading.Lock()
    runs = engine_runs(stack, tmp_path, flows, "inventory_snapshot", "ck", per)
    products_of = {id(flow): products for flow, products in runs}

    def adjust(i: int) -> None:
        version = i // per + 1
        with lock:
            for flow, products in runs:
                payload = stock_adjusted(products[i % per], -1, "RESERVATION", 10_000, version, version)
                produce(producer, serde, ADJUSTED, payload, now + i, flow.prefix)

    final = count // per  # every product's last stockVersion
    table = cassandra_tables(cql).get("inventory_snapshot", "inventory_snapshot")  # a replay may have moved it
    select = cql.prepare(f"SELECT product_id, version, reserved FROM {table} WHERE product_id IN ?")

    def rows(flow: FlowProcess) -> dict[str, tuple[int, int]]:
        return {r.product_id: (r.version, r.reserved) for r in cql.execute(select, (products_of[id(flow)],))}

    # a row written before the kill, acknowledged: it comes back from the commit log
    marker = f"test-{uuid.uuid4().hex[:8]}"
    cql.execute(
        f"INSERT INTO {KEYSPACE}.projection_progress (projection, partition, next_offset) VALUES (%s, %s, %s)",
        [marker, "orders.placed/0", 42],
    )
    written = time.monotonic()
    for flow, _ in runs:
        flow.start()
    feeder = in_the_background(adjust, count, seconds=10)
    until_settled([f for f, _ in runs], lambda flow: len(rows(flow)) > 0, 90, "the first rows in Cassandra")
    time.sleep(max(0.0, written + 2.5 - time.monotonic()))  # past the commit log's sync period (1 s)
    kill_and_bring_back(stack, "cassandra")  # mid-stream: events keep coming
    try:
        query = f"SELECT next_offset FROM {KEYSPACE}.projection_progress WHERE projection = %s"

        def marker_row() -> Any:
            try:
                return cql.execute(query, [marker]).one()
            except Exception:  # noqa: BLE001 - the driver reconnects on its own after the restart
                return None

        row = eventually(marker_row, timeout=30, what=f"the {marker} row written before the kill")
        assert row.next_offset == 42  # replayed from the commit log
    finally:
        cql.execute(f"DELETE FROM {KEYSPACE}.projection_progress WHERE projection = %s", [marker])
    assert apply_cql_migrations(stack.settings) == []  # the schema came back whole
    feeder.join(60)
    producer.flush(30)
    until_settled(
        [f for f, _ in runs],
        lambda flow: rows(flow) == {p: (final, final) for p in products_of[id(flow)]},
        240,
        f"every product's row at version {final}",
    )
    for flow, products in runs:
        redis_versions = [flow.cache.hget(f"inventory:{p}", "version") for p in products]
        assert redis_versions == [str(final)] * len(products), flow.engine


def test_opensearch_killed_mid_stream_ends_with_every_document_at_its_last_version(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess]
) -> None:
    count, per = 6_000, 100
    now = int(time.time() * 1000)
    lock = threading.Lock()
    runs = engine_runs(stack, tmp_path, flows, "product_search_index", "osr", per)
    products_of = {id(flow): products for flow, products in runs}

    def update(i: int) -> None:
        version = i // per + 1
        with lock:
            for flow, products in runs:
                product = products[i % per]
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
                produce(producer, serde, PRODUCT_UPDATED, payload, now + i, flow.prefix)

    final = count // per
    search = httpx.Client(base_url=stack.settings.opensearch.url, timeout=10)

    def names(flow: FlowProcess) -> dict[str, str]:
        r = search.post("/products/_mget", json={"ids": products_of[id(flow)]})
        return {d["_id"]: d["_source"]["name"] for d in r.json()["docs"] if d.get("found")}

    # an index of its own with a document written before the kill: it comes back from the translog
    index = f"test-restart-{uuid.uuid4().hex[:8]}"
    search.put(f"/{index}", json={"settings": {"number_of_shards": 1, "number_of_replicas": 0}}).raise_for_status()
    try:
        search.put(f"/{index}/_doc/1", json={"n": 1}).raise_for_status()  # translog fsynced per request
        for flow, _ in runs:
            flow.start()
        feeder = in_the_background(update, count, seconds=10)
        until_settled([f for f, _ in runs], lambda flow: len(names(flow)) > 0, 90, "the first documents in OpenSearch")
        kill_and_bring_back(stack, "opensearch")
        assert search.get(f"/{index}/_doc/1").raise_for_status().json()["_source"] == {"n": 1}
        products_index(search)  # the alias came back, on the versioned index
        feeder.join(60)
        producer.flush(30)
        until_settled(
            [f for f, _ in runs],
            lambda flow: names(flow) == {p: f"restart test {p} v{final}" for p in products_of[id(flow)]},
            240,
            f"every product's document at version {final}",
        )
    finally:
        search.delete(f"/{index}")
        search.post(
            "/products/_delete_by_query",
            params={"conflicts": "proceed", "refresh": "true"},
            json={"query": {"terms": {"product_id": [p for _, products in runs for p in products]}}},
        )
        search.close()
