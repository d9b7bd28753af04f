"""The serving stores of issue 15 as stack components, on the real local processes: Cassandra with
our CQL migrations, OpenSearch with the versioned product index behind its alias; each survives a
kill -9 and comes back with `shopstream up` (test_store_restarts.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dev.stack.cassandra_migrations import (
    APPLIED_TABLE,
    KEYSPACE,
    apply_cql_migrations,
    read_migrations,
    session,
)
from dev.stack.search_indices import apply_indices, indices_dir
from dev.stack.stack import ComponentStatus, Stack

pytestmark = pytest.mark.stack

TABLES = {"orders_by_customer", "inventory_snapshot", "projection_progress", "schema_migrations", "read_models"}


@pytest.fixture(scope="module")
def cql(stack: Stack) -> Iterator[Any]:
    with session(stack.settings.cassandra) as s:
        yield s


@pytest.fixture(scope="module")
def search(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.settings.opensearch.url, timeout=30) as client:
        yield client


def status_of(stack: Stack, name: str) -> ComponentStatus:
    return stack.status([name])[0]


def shopstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dev.stack.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=240,
        check=False,
    )


def kill_and_bring_back(stack: Stack, name: str) -> ComponentStatus:
    """kill -9 the component's process, then `shopstream up NAME`; returns its status after."""
    before = status_of(stack, name)
    assert before.healthy and before.pid is not None
    os.kill(before.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while status_of(stack, name).pid == before.pid:  # the process manager sees it gone
        assert time.monotonic() < deadline, f"{name} still reported with its killed pid"
        time.sleep(0.2)
    result = shopstream("up", name)
    assert result.returncode == 0, result.stdout + result.stderr
    after = status_of(stack, name)
    assert after.healthy and after.pid not in (None, before.pid), after
    return after


# --- Cassandra ---------------------------------------------------------------------------------


def test_cassandra_answers_cql_with_its_version(stack: Stack, cql: Any) -> None:
    assert status_of(stack, "cassandra").version.startswith("5.0.")
    assert cql.execute("SELECT release_version FROM system.local").one().release_version.startswith("5.0.")
    assert status_of(stack, "cassandra").ports == (stack.settings.cassandra.port, stack.settings.cassandra.storage_port)


def test_the_migrations_made_the_keyspace_and_tables_and_applying_again_changes_nothing(stack: Stack, cql: Any) -> None:
    replication = cql.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", [KEYSPACE]
    ).one()
    assert replication is not None and replication.replication["class"].endswith("SimpleStrategy")
    assert replication.replication["replication_factor"] == "1"
    tables = {
        r.table_name
        for r in cql.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", [KEYSPACE])
    }
    # a projection's table may be a replay's generation of it (`orders_by_customer_r2`, behind read_models)
    assert {re.sub(r"_r\d+$", "", t) for t in tables} >= TABLES
    applied = {r.id for r in cql.execute(f"SELECT id FROM {APPLIED_TABLE}")}
    assert applied == {m for m, _ in read_migrations(stack.settings.repo / "migrations" / "cassandra")}

    schema_before = cql.execute("SELECT schema_version FROM system.local").one().schema_version
    assert apply_cql_migrations(stack.settings) == []
    assert cql.execute("SELECT schema_version FROM system.local").one().schema_version == schema_before


def test_orders_by_customer_is_newest_first_within_a_customer(cql: Any) -> None:
    customer = f"test-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    insert = cql.prepare(
        f"INSERT INTO {KEYSPACE}.orders_by_customer (customer_id, created_at, order_id, status, total_minor,"
        " currency, item_count, version) VALUES (?, ?, ?, 'PLACED', 1000, 'EUR', 1, 1)"
    )
    try:
        for i in range(3):
            cql.execute(insert, [customer, start + timedelta(minutes=i), f"order-{i}"])
        rows = cql.execute(f"SELECT order_id FROM {KEYSPACE}.orders_by_customer WHERE customer_id = %s", [customer])
        assert [r.order_id for r in rows] == ["order-2", "order-1", "order-0"]
    finally:
        cql.execute(f"DELETE FROM {KEYSPACE}.orders_by_customer WHERE customer_id = %s", [customer])


# --- OpenSearch --------------------------------------------------------------------------------


def test_opensearch_is_green_or_yellow(stack: Stack, search: httpx.Client) -> None:
    assert status_of(stack, "opensearch").version == "2.19.6"
    health = search.get("/_cluster/health").raise_for_status().json()
    assert health["status"] in ("green", "yellow")
    assert health["number_of_nodes"] == 1


def products_index(search: httpx.Client) -> str:
    """The one index behind `products`: products_v1, or a replay's rebuild of it (`shopstream
    replay promote product_search_index`: products_v1_r<N>)."""
    (index,) = search.get("/_alias/products").raise_for_status().json()
    assert re.fullmatch(r"products_v1(_r\d+)?", index), index
    return str(index)


def test_the_alias_products_points_at_products_v1_with_the_mapping_of_the_repo(
    stack: Stack, search: httpx.Client
) -> None:
    index = products_index(search)
    expected = json.loads((indices_dir(stack.settings) / "products_v1.json").read_text())["mappings"]
    live = search.get(f"/{index}/_mapping").raise_for_status().json()[index]["mappings"]
    assert live["properties"] == expected["properties"]
    assert live["dynamic"] == "strict"
    assert apply_indices(stack.settings) == []  # applying again changes nothing


def test_product_text_search_through_the_alias(search: httpx.Client) -> None:
    doc_id = f"test-{uuid.uuid4().hex[:8]}"
    doc = {
        "product_id": doc_id,
        "sku": "SKU-TEST",
        "name": f"Trail Running Shoes {doc_id}",
        "description": "Light shoes for muddy trails",
        "category": "shoes",
        "price_minor": 8999,
        "currency": "EUR",
        "in_stock": True,
        "available": 3,
        "version": 1,
        "updated_at": "2026-01-01T00:00:00Z",
    }
    search.put(f"/products/_doc/{doc_id}", params={"refresh": "true"}, json=doc).raise_for_status()
    try:
        query = {
            "query": {"bool": {"must": {"match": {"name": "running"}}, "filter": {"term": {"product_id": doc_id}}}}
        }
        hits = search.post("/products/_search", json=query).raise_for_status().json()["hits"]["hits"]
        assert [h["_id"] for h in hits] == [doc_id]
        refused = search.put(f"/products/_doc/{doc_id}-x", json={**doc, "colour": "red"})  # strict mapping
        assert refused.status_code == 400
    finally:
        search.delete(f"/products/_doc/{doc_id}", params={"refresh": "true"})


# The kill -9 of each store, with dataflows streaming into it: test_store_restarts.py (it uses
# `kill_and_bring_back` above and checks the schema, the index and a row written before the kill).
