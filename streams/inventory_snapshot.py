"""inventory_snapshot: stock.adjusted events → per product on-hand / reserved / available with a
version → Redis `inventory:{productId}` (event-driven set, seed §7) and the compacted
`ecommerce.inventory.stock_snapshot.updated.v1` topic.

The logic is `shopstream.domain.inventory.fold_adjustment`; this module wires it."""

from __future__ import annotations

from typing import Any

from shopstream.domain import event_type
from shopstream.domain.inventory import StockAdjustment, StockSnapshot, fold_adjustment
from streams.runtime import Dataflow, Inbound, KeyState, Projected, Ranking, RedisWrite, derived_record, record_key
from streams.settings import InventorySnapshotSettings

NAME = "inventory_snapshot"
SUMMARY = "stock.adjusted → inventory:{productId} in Redis + compacted snapshot topic"
SOURCE = event_type("ecommerce.inventory.stock.adjusted.v1")
SNAPSHOT = event_type("ecommerce.inventory.stock_snapshot.updated.v1")
REDIS_KEY = "inventory:{}"
TOP_PRODUCTS = "top_products:ordered"  # sorted set: productId by units ordered (net of releases)
LOW_STOCK_KEY = "inventory:low"  # sorted set: productId by available units, when at most LOW_STOCK
LOW_STOCK = 5


def parse(event: dict[str, Any]) -> StockAdjustment:
    adj = StockAdjustment.from_event(event)
    if adj.reason == "SHIPMENT" and adj.stock_version is None:
        raise ValueError("a SHIPMENT adjustment without the stock's after-state")
    return adj


def snapshot_step(inbound: Inbound, state: KeyState) -> Projected | None:
    """Fold one adjustment into the product's snapshot; None when it changed nothing."""
    current = state.get("snapshot")
    snapshot = fold_adjustment(None if current is None else StockSnapshot.from_state(current), inbound.value)
    if snapshot is None:
        return None
    state.set("snapshot", snapshot.to_state())
    ordered = state.get("ordered", 0)
    if inbound.value.reason in ("RESERVATION", "RELEASE"):
        ordered -= inbound.value.delta  # units held by orders, net of releases
        state.set("ordered", ordered)
    return project(snapshot, inbound, ordered)


def project(snapshot: StockSnapshot, cause: Inbound, ordered: int) -> Projected:
    record = snapshot.to_record()
    fields = {k: str(v) for k, v in record.items() if k != "version"}
    low = snapshot.available <= LOW_STOCK
    return Projected(
        derived_record(SNAPSHOT, record, snapshot.version, snapshot.updated_at, cause, NAME),
        RedisWrite(REDIS_KEY.format(snapshot.product_id), snapshot.version, fields),
        (
            # the dashboard's top products and inventory alerts
            Ranking(TOP_PRODUCTS, snapshot.product_id, ordered, snapshot.version),
            Ranking(LOW_STOCK_KEY, snapshot.product_id, snapshot.available if low else None, snapshot.version),
        ),
    )


def build(flow: Dataflow) -> None:
    sdf = flow.source(SOURCE, parse)  # Inbound(StockAdjustment), keyed by productId
    sdf = sdf.apply(snapshot_step, stateful=True).filter(lambda p: p is not None)  # Projected
    sdf = sdf.to_topic(flow.projection_topic(SNAPSHOT), key=record_key)  # the snapshot record, keyed by productId
    sdf.sink(flow.redis_sink())  # HSET inventory:{productId} …; ZADD top_products:ordered, inventory:low


SETTINGS = InventorySnapshotSettings
