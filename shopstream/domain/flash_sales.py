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
    ended: dict[str, int] = field(default_factory=dict)  # sale id → when it would have ended
    version: int = 0
    watermark: int = 0  # the highest event time merged: what "over" is measured against

    def to_state(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "sales": {k: dict(vars(v)) for k, v in self.sales.items()},
            "ended": self.ended,
            "version": self.version,
            "watermark": self.watermark,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PriceMap:
        return cls(
            state["product_id"],
            {k: FlashSale(**v) for k, v in state["sales"].items()},
            dict(state["ended"]),
            state["version"],
            state["watermark"],
        )

    def started(self, sale: FlashSale, at: int) -> bool:
        """Merge a sale that started; False when it changes nothing (duplicate, ended, over)."""
        self.watermark = max(self.watermark, at)
        if sale.sale_id in self.ended or sale.sale_id in self.sales or sale.ends_at <= self.watermark:
            return self._prune()
        self.sales[sale.sale_id] = sale
        self._prune()
        self.version += 1
        return True

    def ended_sale(self, sale_id: str, ends_at: int, at: int) -> bool:
        """Merge the end of a sale (early or on time); False when it changes nothing."""
        self.watermark = max(self.watermark, at)
        if sale_id in self.ended or (sale_id not in self.sales and max(ends_at, at) <= self.watermark):
            return self._prune()
        self.ended[sale_id] = max(ends_at, at)
        self.sales.pop(sale_id, None)
        self._prune()
        self.version += 1
        return True

    def _prune(self) -> bool:
        """Forget sales (and ended ids) whose end time is past; True when something went."""
        over = [k for k, s in self.sales.items() if s.ends_at <= self.watermark]
        done = [k for k, until in self.ended.items() if until <= self.watermark]
        for k in over:
            del self.sales[k]
        for k in done:
            del self.ended[k]
        if over:
            self.version += 1
        return bool(over)

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
