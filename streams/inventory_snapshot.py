"""inventory_snapshot: stock.adjusted → per product on-hand / reserved / available with a version
→ Redis `inventory:{productId}` (event-driven set, seed §7), the dashboard's rankings, the
compacted `ecommerce.inventory.stock_snapshot.updated.v1` topic and Cassandra's
`inventory_snapshot` table.

The rules are `shopstream.domain.inventory` (the fold, available units, low stock, units
ordered); this module is the projection's one stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shopstream.domain import event_type
from shopstream.domain.envelope import epoch_ms
from shopstream.domain.inventory import (
    ON_HAND_REASONS,
    RESERVED_REASONS,
    StockAdjustment,
    StockSnapshot,
    fold_adjustment,
    is_low,
    units_ordered,
)
from shopstream.domain.typed_events import BadEvent, Envelope, StockAdjusted
from streams.core import BaseStage, Emit, Item, Projection, Rank, Row, Stepped, Upsert, Write
from streams.settings import InventorySnapshotSettings

NAME = "inventory_snapshot"
SUMMARY = "stock.adjusted → inventory:{productId} in Redis + compacted snapshot topic"
SETTINGS = InventorySnapshotSettings
SOURCE = event_type("ecommerce.inventory.stock.adjusted.v1")
SNAPSHOT = event_type("ecommerce.inventory.stock_snapshot.updated.v1")
REDIS_KEY = "inventory:{}"
TOP_PRODUCTS = "top_products:ordered"  # sorted set: productId by units ordered (net of releases)
LOW_STOCK_KEY = "inventory:low"  # sorted set: productId by available units, when low
CASSANDRA_TABLE = "inventory_snapshot"  # one row per product
OUTPUTS = (
    SNAPSHOT.topic,
    "redis inventory:{productId}",
    f"redis {TOP_PRODUCTS}, {LOW_STOCK_KEY}",
    f"cassandra {CASSANDRA_TABLE}",
)


SEED_TABLE = "inventory_stock"  # what `replay run --reseed` re-reads from Postgres
SEED_REASON = "SNAPSHOT"  # a seed row's reason: neither on-hand nor reserved moves by a delta


def seed(row: Mapping[str, Any], changed_at: int) -> StockAdjusted | None:
    """A stock row (Postgres `inventory_stock`, as CDC gives it) as the after-state the fold takes:
    on-hand, reserved and the row's version (the stockVersion of its events); its updated_at is
    its last event's occurredAt (the API stamps the event with it). No delta: the units held by
    orders (top products) are not in the row. A row never adjusted (version 0) has no event and
    seeds nothing."""
    version = int(row["version"])
    if version <= 0:
        return None
    product_id = str(row["product_id"])
    on_hand, reserved = int(row["on_hand"]), int(row["reserved"])
    updated = row.get("updated_at")
    occurred_at = epoch_ms(datetime.fromisoformat(updated.replace("Z", "+00:00"))) if updated else changed_at
    envelope = Envelope(
        f"seed:{SEED_TABLE}:{product_id}:{version}",
        SOURCE.name,
        occurred_at,
        "replay-reseed",
        "",
        "",
        SOURCE.schema_version,
        product_id,
    )
    return StockAdjusted(envelope, product_id, 0, SEED_REASON, None, on_hand - reserved, on_hand, reserved, version)


def check(event: StockAdjusted) -> None:
    """Only what the fold can take: a contract 1.0 record (no after-state) must move on-hand or
    reserved units by its delta (a SHIPMENT cannot)."""
    after_state = event.stock_version is not None and event.on_hand is not None and event.reserved is not None
    if not after_state and event.reason not in ON_HAND_REASONS | RESERVED_REASONS:
        raise BadEvent(f"a {event.reason} adjustment without the stock's after-state")


@dataclass(slots=True)
class ProductStock:
    snapshot: StockSnapshot
    ordered: int = 0  # units held by orders, net of releases


@dataclass(slots=True)
class Cause:
    trace_id: str
    correlation_id: str


class SnapshotStage(BaseStage[Any, Any]):
    """Keyed by productId: fold the batch's adjustments; write the last snapshot once."""

    name = "snapshot"
    forwards = False

    def step(self, key: str, state: ProductStock | None, items: Sequence[Item[StockAdjusted]]) -> Stepped[ProductStock]:
        changed: Item[StockAdjusted] | None = None
        for item in items:  # Item(StockAdjusted), keyed by productId
            adj = StockAdjustment.of(item.value)
            snapshot = fold_adjustment(None if state is None else state.snapshot, adj)
            if snapshot is None:  # a duplicate or an older version
                continue
            if state is None:
                state = ProductStock(snapshot)
            state.snapshot = snapshot
            state.ordered += units_ordered(adj.reason, adj.delta)
            changed = item
        if changed is None:
            return Stepped(state)
        assert state is not None
        return Stepped(state, project(state, changed.trace_id, changed.correlation_id))

    def current(self, key: str, state: ProductStock) -> list[Write]:
        return project(state, "", "")

    def dump(self, state: ProductStock) -> Any:
        return {"snapshot": state.snapshot.to_state(), "ordered": state.ordered}

    def load(self, data: Any) -> ProductStock:
        return ProductStock(StockSnapshot.from_state(data["snapshot"]), data["ordered"])


def project(state: ProductStock, trace_id: str, correlation_id: str) -> list[Write]:
    snapshot = state.snapshot
    record = snapshot.to_record()
    fields = {k: str(v) for k, v in record.items() if k != "version"}
    low = is_low(snapshot.available)
    return [
        Upsert(REDIS_KEY.format(snapshot.product_id), snapshot.version, fields),  # HSET inventory:{productId} …
        # the dashboard's top products and inventory alerts
        Rank(TOP_PRODUCTS, snapshot.product_id, state.ordered, snapshot.version),
        Rank(LOW_STOCK_KEY, snapshot.product_id, snapshot.available if low else None, snapshot.version),
        Emit(SNAPSHOT, snapshot.version, record, snapshot.updated_at, trace_id, correlation_id, NAME),
        # the same snapshot in Cassandra's inventory_snapshot table (migrations/cassandra)
        Row(
            CASSANDRA_TABLE,
            (("product_id", snapshot.product_id),),
            snapshot.version,
            {
                "on_hand": snapshot.on_hand,
                "reserved": snapshot.reserved,
                "available": snapshot.available,
                "version": snapshot.version,
                "updated_at": snapshot.updated_at,
            },
        ),
    ]


def projection(settings: InventorySnapshotSettings) -> Projection:
    return Projection(
        NAME,
        (SOURCE,),
        (SnapshotStage(),),
        emits=(SNAPSHOT,),
        check=check,
        stores=("redis", "cassandra"),
        redis_keys=("inventory:*", TOP_PRODUCTS + "*"),  # with the rankings' version hashes
        tables=(CASSANDRA_TABLE,),
        seeds={SEED_TABLE: seed},
    )
