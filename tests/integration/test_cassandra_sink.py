"""The Cassandra sink on the real local Cassandra: rows written with their version as the write
timestamp (an older version written later changes nothing, a replay of the same batch neither),
deletes as of a version, the positions recorded after the rows and read back, a second writer
that cannot move a position back, and a store that lost positions refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dev.stack.stack import Stack
from shopstream.runtime.settings import Cassandra
from streams.core import Row
from streams.sinks.cassandra import CassandraSink
from streams.sinks.cassandra_pointers import cassandra_tables
from streams.sinks.redis import StoreRegressed

pytestmark = pytest.mark.stack


@pytest.fixture
def sink(stack: Stack) -> Iterator[CassandraSink]:
    s = CassandraSink(Cassandra(contact_points=stack.settings.cassandra.address), f"test-{uuid.uuid4().hex[:8]}")
    yield s
    s.close()


def snapshot(product: str, version: int, on_hand: int, delete: bool = False) -> Row:
    values = {
        "on_hand": on_hand,
        "reserved": 0,
        "available": on_hand,
        "version": version,
        "updated_at": 1_795_000_000_000,
    }
    return Row("inventory_snapshot", (("product_id", product),), version, {} if delete else values, delete=delete)


def held(sink: CassandraSink, product: str) -> Any:
    # the physical table `read_models` points at (a replay's promotion may have moved it)
    table = cassandra_tables(sink.session).get("inventory_snapshot", "inventory_snapshot")
    return sink.session.execute(f"SELECT on_hand, version FROM {table} WHERE product_id = %s", (product,)).one()


def test_the_newest_version_wins_in_any_order_and_replays_change_nothing(sink: CassandraSink) -> None:
    a, b = f"P-cs-{uuid.uuid4().hex[:8]}", f"P-cs-{uuid.uuid4().hex[:8]}"
    sink.apply([snapshot(a, 3, 30), snapshot(b, 1, 10)], {"t[0]": 2})
    sink.apply([snapshot(a, 2, 20), snapshot(b, 2, 20)], {"t[0]": 4})  # a: older, arrives later
    assert (held(sink, a).on_hand, held(sink, a).version) == (30, 3)
    assert (held(sink, b).on_hand, held(sink, b).version) == (20, 2)
    sink.apply([snapshot(a, 3, 30), snapshot(b, 2, 20)], {"t[0]": 4})  # the same batch again
    assert (held(sink, a).on_hand, held(sink, b).on_hand) == (30, 20)
    # a batch holding several versions of a row writes its newest
    sink.apply([snapshot(b, 5, 50), snapshot(b, 4, 40)], {"t[0]": 6})
    assert held(sink, b).on_hand == 50
    # a delete as of a version: an older write cannot bring the row back, a newer one can
    sink.apply([snapshot(a, 4, 0, delete=True)], {"t[0]": 7})
    assert held(sink, a) is None
    sink.apply([snapshot(a, 3, 30)], {"t[0]": 8})
    assert held(sink, a) is None
    sink.apply([snapshot(a, 5, 55)], {"t[0]": 9})
    assert held(sink, a).on_hand == 55
    assert sink.progress() == {"t[0]": 9}


def test_an_order_row_written_again_at_its_version_keeps_its_lines_once(sink: CassandraSink) -> None:
    """A dataflow restarted after a kill writes rows again at the versions they had (the same
    `USING TIMESTAMP`): an order's lines must come out as they went in, not appended twice (a
    non-frozen list did that, migration 0003)."""
    customer, order = f"USER-cs-{uuid.uuid4().hex[:8]}", f"ORD-cs-{uuid.uuid4().hex[:8]}"
    key = (("customer_id", customer), ("created_at", 1_795_000_000_000), ("order_id", order))
    values = {
        "status": "PENDING",
        "total_minor": 2500,
        "currency": "USD",
        "item_count": 3,
        "order_lines": [("P-a", 1, 1000), ("P-b", 2, 750)],
        "status_changed_at": {"PENDING": 1_795_000_000_000},
        "trace_id": "t",
        "updated_at": 1_795_000_000_000,
        "version": 1,
    }
    for _ in range(3):
        sink.apply([Row("orders_by_customer", key, 1, values)], {})
    table = cassandra_tables(sink.session).get("orders_by_customer", "orders_by_customer")
    (row,) = sink.session.execute(f"SELECT order_lines FROM {table} WHERE customer_id = %s", (customer,))
    assert [tuple(line) for line in row.order_lines] == [("P-a", 1, 1000), ("P-b", 2, 750)]


def test_a_position_never_moves_back_and_a_store_that_lost_positions_is_refused(
    sink: CassandraSink, stack: Stack
) -> None:
    sink.apply([], {"t[0]": 100, "t[1]": 50})
    other = CassandraSink(Cassandra(contact_points=stack.settings.cassandra.address), sink.group)
    try:
        other.apply([], {"t[0]": 90})  # a stale writer of the same group (a rebalance)
        assert other.progress() == {"t[0]": 100, "t[1]": 50}
    finally:
        other.close()
    # the store comes back without the positions this sink recorded (a lost commit log segment)
    sink.session.execute(
        "DELETE FROM projection_progress USING TIMESTAMP 100 WHERE projection = %s AND partition = %s",
        (sink.group, "t[0]"),
    )
    with pytest.raises(StoreRegressed, match="lost writes"):
        sink.apply([snapshot(f"P-cs-{uuid.uuid4().hex[:8]}", 1, 1)], {"t[0]": 101})
