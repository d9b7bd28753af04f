"""flash_sale_price_map: flash_sale.started / flash_sale.ended → per product the live and coming
sales → Redis `flash_price:{productId}` (field `sales`, JSON), expiring when its last sale ends
(cache authority with TTL, seed §7). Order pricing reads it (`serving_api.services.pricing`).

The merge is `shopstream.domain.flash_sales` (order-independent); this module is its stage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shopstream.domain import event_type
from shopstream.domain.flash_sales import FlashSale, PriceMap
from shopstream.domain.typed_events import BadEvent, FlashSaleEnded, FlashSaleStarted
from streams.core import BaseStage, Item, Projection, Stepped, Upsert, Write
from streams.settings import FlashSalePriceMapSettings

NAME = "flash_sale_price_map"
SUMMARY = "flash_sale.started/ended → flash_price:{productId} in Redis (TTL to the sale's end)"
SETTINGS = FlashSalePriceMapSettings
STARTED = event_type("ecommerce.pricing.flash_sale.started.v1")
ENDED = event_type("ecommerce.pricing.flash_sale.ended.v1")
REDIS_KEY = "flash_price:{}"
OUTPUTS = ("redis flash_price:{productId}",)

SaleEvent = FlashSaleStarted | FlashSaleEnded


def check(event: SaleEvent) -> None:
    if isinstance(event, FlashSaleStarted) and (event.ends_at <= event.starts_at or event.sale_price.amount_minor < 0):
        raise BadEvent(f"not a valid sale: {event.sale_id} from {event.starts_at} to {event.ends_at}")


class PriceMapStage(BaseStage[Any, Any]):
    """Keyed by productId: merge the batch's sale events into the product's map."""

    name = "price_map"
    forwards = False

    def __init__(self, empty_ttl_ms: int) -> None:
        self.empty_ttl_ms = empty_ttl_ms

    def step(self, key: str, state: PriceMap | None, items: Sequence[Item[SaleEvent]]) -> Stepped[PriceMap]:
        price_map = state or PriceMap(key)
        changed = False
        for item in items:  # Item(FlashSaleStarted | FlashSaleEnded), keyed by productId
            event, at = item.value, item.event_time
            if isinstance(event, FlashSaleStarted):
                changed |= price_map.started(FlashSale.of(event), at)
            else:
                changed |= price_map.ended_sale(event.sale_id, event.ends_at, at)
        return Stepped(price_map, self.current(key, price_map) if changed else [])

    def current(self, key: str, state: PriceMap) -> list[Write]:
        expires = state.expires_at() or state.watermark + self.empty_ttl_ms
        sales = json.dumps(state.to_cache(), separators=(",", ":"), sort_keys=True)
        # HSET flash_price:{productId} sales <json> version; PEXPIREAT its last end
        return [Upsert(REDIS_KEY.format(state.product_id), state.version, {"sales": sales}, expires)]

    def dump(self, state: PriceMap) -> Any:
        return state.to_state()

    def load(self, data: Any) -> PriceMap:
        return PriceMap.from_state(data)


def projection(settings: FlashSalePriceMapSettings) -> Projection:
    return Projection(
        NAME,
        (STARTED, ENDED),
        (PriceMapStage(settings.empty_ttl_s * 1000),),
        check=check,
        redis_keys=("flash_price:*",),
    )
