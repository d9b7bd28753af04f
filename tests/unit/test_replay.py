"""The replay's pure parts, without a store: where a shadow's writes go, that side effects are never
made again, that parity digests do not depend on the order keys are read in and find every changed
key, and that a checkpoint restores the state it saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopstream.domain import event_type
from shopstream.domain.typed_events import StockAdjusted
from streams import inventory_snapshot, revenue_windows, serving_caches
from streams.core import (
    NEVER,
    Document,
    Emit,
    Invalidate,
    Item,
    Position,
    Rank,
    Row,
    Upsert,
    run_batch,
    without_side_effects,
)
from streams.replay.compare import SHARDS, Side, differing_keys
from streams.replay.runner import ReplayRun
from streams.replay.targets import Shadow, physical_name
from tests.unit.test_projections import envelope_of

STOCK = event_type("ecommerce.inventory.stock.adjusted.v1")

SHADOW = Shadow.make(
    "shopstream-inventory_snapshot",
    3,
    {"inventory_snapshot": "inventory_snapshot_r3"},
    {"products": "products_v1_r3"},
)


def test_a_shadow_writes_its_own_namespace_tables_and_index() -> None:
    writes = [
        Upsert("inventory:P1", 7, {"available": "3"}),
        Rank("inventory:low", "P1", 3, 7),
        Invalidate("product:P1:floor", 4, ("product:P1", "gql:product:P1"), 60_000),
        Row("inventory_snapshot", (("product_id", "P1"),), 7, {"available": 3}),
        Document("products", "P1", 9, {"name": "mug"}),
    ]
    up, rank, inv, row, doc = SHADOW.retarget(writes)
    prefix = "replay:shopstream-inventory_snapshot:r3:"
    assert isinstance(up, Upsert) and up.key == prefix + "inventory:P1" and up.version == 7
    assert isinstance(rank, Rank) and rank.key == prefix + "inventory:low" and rank.member == "P1"
    assert isinstance(inv, Invalidate) and inv.key == prefix + "product:P1:floor"
    assert inv.drop == (prefix + "product:P1", prefix + "gql:product:P1")
    assert isinstance(row, Row) and row.table == "inventory_snapshot_r3" and row.key == (("product_id", "P1"),)
    assert isinstance(doc, Document) and doc.index == "products_v1_r3" and doc.id == "P1"


def test_a_shadow_refuses_a_side_effect() -> None:
    emit = Emit(event_type("ecommerce.inventory.stock_snapshot.updated.v1"), 1, {"productId": "P1"}, 0, "", "", "t")
    with pytest.raises(TypeError, match="side effect"):
        SHADOW.retarget([emit])


@pytest.mark.parametrize("module", [inventory_snapshot, revenue_windows, serving_caches])
def test_every_projection_declares_projection_records_a_side_effect(module: Any) -> None:
    projection = module.projection(module.SETTINGS())
    emit = Emit(event_type("ecommerce.inventory.stock_snapshot.updated.v1"), 1, {"productId": "P1"}, 0, "", "", "t")
    kept, withheld = without_side_effects(projection, [Upsert("k", 1, {}), emit])
    assert kept == [Upsert("k", 1, {})] and withheld == 1
    assert projection.redis_keys, "a projection writing Redis names its keys (what promotion swaps)"


def test_generation_names() -> None:
    assert physical_name("orders_by_customer", 2) == "orders_by_customer_r2"
    assert physical_name("orders_by_customer_r2", 3) == "orders_by_customer_r3"
    assert physical_name("products_v1_r2", 0) == "products_v1"


values = st.dictionaries(st.text(min_size=1, max_size=12), st.dictionaries(st.text(max_size=5), st.text(max_size=5)))


@given(values, st.randoms(use_true_random=False))
def test_shard_digests_do_not_depend_on_the_order_keys_are_read_in(data: dict[str, Any], rnd: Any) -> None:
    a, b = Side(), Side()
    for key, value in data.items():
        a.add(key, value)
    shuffled = list(data.items())
    rnd.shuffle(shuffled)
    for key, value in shuffled:
        b.add(key, value)
    assert a.shards() == b.shards()
    assert differing_keys(a, b) == ([], SHARDS, 0)


@given(values.filter(bool), st.data())
def test_every_changed_missing_or_extra_key_is_found(data: dict[str, Any], draw: st.DataObject) -> None:
    live, shadow = Side(), Side()
    for key, value in data.items():
        live.add(key, value)
        shadow.add(key, value)
    changed = draw.draw(st.sampled_from(sorted(data)))
    shadow.add(changed, {"tampered": "yes"})
    extra = changed + "-extra"
    if extra not in data:
        shadow.add(extra, {})
    keys, _, _ = differing_keys(live, shadow)
    assert changed in keys and (extra in data or extra in keys)
    assert set(keys) <= {changed, extra}


def test_a_key_on_one_side_that_is_expiring_is_not_a_difference() -> None:
    live, shadow = Side(), Side()
    live.add("order_status:O1", {"status": "FULFILLED"}, expires_at=1_000)
    live.add("order_status:O2", {"status": "PAID"}, expires_at=None)
    keys, _, expiring = differing_keys(live, shadow, now_ms=0)
    assert keys == ["order_status:O2"] and expiring == 1


def stock_item(product: str, version: int, on_hand: int, n: int) -> Item[Any]:
    at = 1_795_000_000_000 + n * 1_000
    event = StockAdjusted(envelope_of(STOCK, product, at, n), product, 1, "RESTOCK", None, on_hand, on_hand, 0, version)
    return Item(product, event, Position("t[0]", n), at, NEVER, "", "")


def test_a_checkpoint_restores_every_keys_state_and_the_positions(tmp_path: Path) -> None:
    settings = inventory_snapshot.SETTINGS(registry={"url": "http://127.0.0.1:9"})
    projection = inventory_snapshot.projection(settings)
    run = ReplayRun(projection, settings, None, tmp_path / "checkpoint.msgpack")
    items = [stock_item("P1", 1, 5, 0), stock_item("P2", 1, 3, 1), stock_item("P1", 2, 4, 2)]
    run_batch(projection, run.runners, run.states, items)
    run.next = {"t[0]": 3}
    run.clock.observe("t[0]", 1234)
    run.checkpoint()
    again = ReplayRun(projection, settings, None, tmp_path / "checkpoint.msgpack")
    stage = projection.stages[0]
    assert {k: ks.dump(stage) for k, ks in again.states[0].items()} == {
        k: ks.dump(stage) for k, ks in run.states[0].items()
    }
    assert again.next == {"t[0]": 3} and again.clock.highest == {"t[0]": 1234}
    run.close()
    again.close()
