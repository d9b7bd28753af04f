"""The inventory snapshot: per product on-hand / reserved / available, folded from
stock.adjusted events. Pure; the Quix dataflow, other engines and the replay call `fold_adjustment`.

An adjustment from a current producer carries the stock row's state after the change and its
version (Postgres `inventory_stock.version`, bumped by every change of the row); the snapshot takes
that state and ignores anything not newer, so Debezium's at-least-once redelivery and replays are
harmless. Older records (contract 1.0: no after-state) are folded from their delta by reason."""

from __future__ import annotations

from typing import Any

import msgspec

from shopstream.domain.typed_events import StockAdjusted

# reasons whose delta moves on-hand units; RESERVATION/RELEASE move reserved units instead
ON_HAND_REASONS = frozenset({"RESTOCK", "SENSOR", "MANUAL", "OTHER"})
RESERVED_REASONS = frozenset({"RESERVATION", "RELEASE"})
# a product is low on stock at this many available units or fewer (the dashboard's alerts)
LOW_STOCK = 5


def available(on_hand: int, reserved: int) -> int:
    """Units that can still be sold: on hand, less what orders hold."""
    return on_hand - reserved


def is_low(units_available: int) -> bool:
    return units_available <= LOW_STOCK


def units_ordered(reason: str, delta: int) -> int:
    """What an adjustment adds to a product's units held by orders, net of releases (the
    dashboard's top products): a reservation's delta is negative, a release's positive."""
    return -delta if reason in RESERVED_REASONS else 0


class StockAdjustment(msgspec.Struct, frozen=True, gc=False):
    """The part of a stock.adjusted event the snapshot needs."""

    product_id: str
    delta: int  # change in available units
    reason: str
    available: int
    occurred_at: int  # epoch ms
    on_hand: int | None = None  # after the change (contract 1.1+)
    reserved: int | None = None
    stock_version: int | None = None

    @classmethod
    def of(cls, event: StockAdjusted) -> StockAdjustment:
        return cls(
            event.product_id,
            event.delta,
            event.reason,
            event.available,
            event.envelope.occurred_at,
            event.on_hand,
            event.reserved,
            event.stock_version,
        )


class StockSnapshot(msgspec.Struct, frozen=True, gc=False):
    product_id: str
    on_hand: int = 0
    reserved: int = 0
    # the stock row's version when known; else the number of adjustments folded
    version: int = 0
    updated_at: int = 0  # occurredAt of the last adjustment folded (epoch ms)

    @property
    def available(self) -> int:
        return available(self.on_hand, self.reserved)

    def to_state(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "version": self.version,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StockSnapshot:
        return cls(**state)

    def to_record(self) -> dict[str, Any]:
        """The snapshot topic's payload fields (and the Redis hash)."""
        return {
            "productId": self.product_id,
            "onHand": self.on_hand,
            "reserved": self.reserved,
            "available": self.available,
            "version": self.version,
            "updatedAt": self.updated_at,
        }


def fold_adjustment(snapshot: StockSnapshot | None, adj: StockAdjustment) -> StockSnapshot | None:
    """The snapshot after `adj`; None when `adj` changes nothing (a duplicate, or older than
    the snapshot), so a caller writes nothing."""
    current = snapshot or StockSnapshot(adj.product_id)
    if adj.stock_version is not None:
        if adj.stock_version <= current.version:
            return None
        if adj.on_hand is not None and adj.reserved is not None:
            updated = current.updated_at if current.updated_at > adj.occurred_at else adj.occurred_at
            return StockSnapshot(current.product_id, adj.on_hand, adj.reserved, adj.stock_version, updated)
    # contract 1.0: fold the delta
    on_hand, reserved = current.on_hand, current.reserved
    if adj.reason in RESERVED_REASONS:
        reserved -= adj.delta  # a reservation's delta is negative, a release's positive
    elif adj.reason in ON_HAND_REASONS:
        on_hand += adj.delta
    else:
        raise ValueError(f"a {adj.reason} adjustment needs the stock's after-state (onHand, reserved, stockVersion)")
    version = adj.stock_version if adj.stock_version is not None else current.version + 1
    return StockSnapshot(current.product_id, on_hand, reserved, version, max(current.updated_at, adj.occurred_at))
