"""flash_sale_price_map: flash_sale.started / flash_sale.ended → per product the live and coming
sales → Redis `flash_price:{productId}` (field `sales`, JSON), expiring when its last sale ends
(cache authority with TTL, seed §7). Order pricing reads it (`serving_api.services.pricing`).

The logic is `shopstream.domain.flash_sales`; this module wires it."""

from __future__ import annotations

from typing import Any

from shopstream.domain import event_type
from shopstream.domain.envelope import epoch_ms
from shopstream.domain.flash_sales import FlashSale, PriceMap
from streams.runtime import Dataflow, Inbound, KeyState, Projected, RedisWrite, as_json
from streams.settings import FlashSalePriceMapSettings

NAME = "flash_sale_price_map"
SUMMARY = "flash_sale.started/ended → flash_price:{productId} in Redis (TTL to the sale's end)"
STARTED = event_type("ecommerce.pricing.flash_sale.started.v1")
ENDED = event_type("ecommerce.pricing.flash_sale.ended.v1")
REDIS_KEY = "flash_price:{}"


# (kind, the sale or the ended sale's {saleId, endsAt}, event time, productId)
Change = tuple[str, Any, int, str]


def parse_started(event: dict[str, Any]) -> Change:
    sale = FlashSale.from_event(event)
    if sale.ends_at <= sale.starts_at or sale.price_minor < 0:
        raise ValueError(f"not a valid sale: {sale}")
    return "started", sale, epoch_ms(event["occurredAt"]), sale.product_id


def parse_ended(event: dict[str, Any]) -> Change:
    p = event["payload"]
    ended = {"saleId": p["saleId"], "endsAt": epoch_ms(p["endsAt"])}
    return "ended", ended, epoch_ms(event["occurredAt"]), p["productId"]


def merge_step(empty_ttl_ms: int) -> Any:
    def step(inbound: Inbound, state: KeyState) -> Projected | None:
        """Merge one event into the product's map; None when it changed nothing."""
        kind, what, at, product_id = inbound.value
        current = state.get("map")
        price_map = PriceMap.from_state(current) if current else PriceMap(product_id)
        if kind == "started":
            changed = price_map.started(what, at)
        else:
            changed = price_map.ended_sale(what["saleId"], what["endsAt"], at)
        state.set("map", price_map.to_state())
        if not changed:
            return None
        expires = price_map.expires_at() or price_map.watermark + empty_ttl_ms
        return Projected(
            None,
            RedisWrite(
                REDIS_KEY.format(price_map.product_id),
                price_map.version,
                {"sales": as_json(price_map.to_cache())},
                expires,
            ),
        )

    return step


def build(flow: Dataflow) -> None:
    settings = flow.settings
    assert isinstance(settings, FlashSalePriceMapSettings)
    sdf = flow.source(STARTED, parse_started).concat(
        flow.source(ENDED, parse_ended)
    )  # Inbound(Change), keyed by productId
    sdf = sdf.apply(merge_step(settings.empty_ttl_s * 1000), stateful=True)  # Projected | None
    sdf = sdf.filter(lambda p: p is not None)
    sdf.sink(flow.redis_sink())  # HSET flash_price:{productId} sales <json> version; PEXPIREAT its last end


SETTINGS = FlashSalePriceMapSettings
