"""The flash-sale price map: per product, the sales that are live or still to come, merged from
flash_sale.started / flash_sale.ended events. Pure; every engine and the replay call these.

Started and ended events travel on two topics, so an `ended` may arrive before its `started`:
the merge keeps ended sale ids (until the sale's end time passes) and is order-independent —
any interleaving of the same events yields the same map. The price a product sells at, at time
t, is the lowest price among its sales running at t (`price_at`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shopstream.domain.typed_events import FlashSaleStarted


@dataclass(frozen=True)
class FlashSale:
    sale_id: str
    product_id: str
    price_minor: int
    currency: str
    regular_minor: int
    starts_at: int  # epoch ms
    ends_at: int

    def running_at(self, at: int) -> bool:
        return self.starts_at <= at < self.ends_at

    @classmethod
    def of(cls, event: FlashSaleStarted) -> FlashSale:
        return cls(
            sale_id=event.sale_id,
            product_id=event.product_id,
            price_minor=event.sale_price.amount_minor,
            currency=event.sale_price.currency,
            regular_minor=event.regular_price.amount_minor,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
        )


@dataclass
class PriceMap:
    """One product's entry: its sales by id, the ids of ended sales (kept until their end time, so a
    late `started` cannot revive them) and how many events changed it (the Redis version)."""

    product_id: str
    sales: dict[str, FlashSale] = field(default_factory=dict)
    # sale id → (when it would have ended, whether its started event was merged too)
    ended: dict[str, tuple[int, bool]] = field(default_factory=dict)
    version: int = 0
    watermark: int = 0  # the highest event time merged: what "over" is measured against

    def to_state(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "sales": {k: dict(vars(v)) for k, v in self.sales.items()},
            "ended": {k: list(v) for k, v in self.ended.items()},
            "version": self.version,
            "watermark": self.watermark,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PriceMap:
        return cls(
            state["product_id"],
            {k: FlashSale(**v) for k, v in state["sales"].items()},
            {k: (v[0], v[1]) if isinstance(v, list) else (v, False) for k, v in state["ended"].items()},
            state["version"],
            state["watermark"],
        )

    # The version counts the distinct events merged (a started and an ended per sale), so it is
    # the same whatever order the two topics were read in: two engines, or a replay after a
    # restart, reach the same version with the same map. Pruning (sales whose end passed) does not
    # count: readers filter by time anyway (`price_at`). Events read only after their sale was
    # over change nothing and count nothing (so their duplicates cannot count twice).

    def started(self, sale: FlashSale, at: int) -> bool:
        """Merge a sale that started; False when it is a duplicate."""
        self.watermark = max(self.watermark, at)
        self._prune()
        ended = self.ended.get(sale.sale_id)
        if sale.sale_id in self.sales or (ended is not None and ended[1]):
            return False  # a duplicate
        if ended is not None:  # its end was read first: only counted
            self.ended[sale.sale_id] = (ended[0], True)
        elif sale.ends_at > self.watermark:
            self.sales[sale.sale_id] = sale
        else:
            return False  # over before it was read: nothing to merge or remember (nor count)
        self.version += 1
        return True

    def ended_sale(self, sale_id: str, ends_at: int, at: int) -> bool:
        """Merge the end of a sale (early or on time); False when it is a duplicate."""
        self.watermark = max(self.watermark, at)
        self._prune()
        if sale_id in self.ended:
            return False
        if sale_id not in self.sales and max(ends_at, at) <= self.watermark:
            return False  # over before it was read: nothing to merge or remember (nor count)
        started = self.sales.pop(sale_id, None) is not None
        self.ended[sale_id] = (max(ends_at, at), started)
        self.version += 1
        return True

    def _prune(self) -> None:
        """Forget sales (and ended ids) whose end time is past."""
        for k in [k for k, s in self.sales.items() if s.ends_at <= self.watermark]:
            del self.sales[k]
        for k in [k for k, (until, _) in self.ended.items() if until <= self.watermark]:
            del self.ended[k]

    def expires_at(self) -> int | None:
        """When the map entry (and its Redis key) can go: the end of its last sale."""
        return max((s.ends_at for s in self.sales.values()), default=None)

    def to_cache(self) -> list[dict[str, Any]]:
        """The Redis value: the live and coming sales, soonest first."""
        return [
            {
                "saleId": s.sale_id,
                "priceMinor": s.price_minor,
                "currency": s.currency,
                "regularMinor": s.regular_minor,
                "startsAt": s.starts_at,
                "endsAt": s.ends_at,
            }
            for s in sorted(self.sales.values(), key=lambda s: (s.starts_at, s.sale_id))
        ]


def price_at(sales: list[dict[str, Any]], at: int) -> dict[str, Any] | None:
    """The sale a product sells at, at `at` (epoch ms), from its cached list: the lowest price
    among the sales running then (ties: the earliest sale id); None when none runs."""
    running = [s for s in sales if s["startsAt"] <= at < s["endsAt"]]
    return min(running, key=lambda s: (s["priceMinor"], s["saleId"]), default=None)
