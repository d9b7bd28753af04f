"""serving_caches: the serving API's read-through caches, invalidated only by consuming events
(seed §7, §13: no side channel from the writers): product.updated → drop `product:{id}` and
`gql:product:{id}`, and leave the product's version as their floor so that a read that raced the
update cannot put the older copy back (`serving_api.services.product_cache`)."""

from __future__ import annotations

from typing import Any

from shopstream.domain import event_type
from streams.runtime import Dataflow, Inbound, Invalidation, KeyState, Projected
from streams.settings import ServingCachesSettings

NAME = "serving_caches"
SUMMARY = "product.updated → drops product:{id} and gql:product:{id} (versioned floor)"
PRODUCT_UPDATED = event_type("ecommerce.product.product.updated.v1")
FLOOR, ENTRIES = "product:{}:floor", ("product:{}", "gql:product:{}")


def parse(event: dict[str, Any]) -> tuple[str, int]:
    """(productId, its version); contract 1.0 records carry no version: 0, drop without a floor."""
    p = event["payload"]
    return p["productId"], p.get("version") or 0


def invalidation_step(ttl_ms: int) -> Any:
    def step(inbound: Inbound, state: KeyState) -> Projected | None:
        """The product's cache entries to drop, once per version (redeliveries change nothing)."""
        product_id, version = inbound.value
        if version and version <= state.get("version", 0):
            return None
        state.set("version", version)
        entries = tuple(e.format(product_id) for e in ENTRIES)
        return Projected(None, Invalidation(FLOOR.format(product_id), version, entries, ttl_ms))

    return step


def build(flow: Dataflow) -> None:
    settings = flow.settings
    assert isinstance(settings, ServingCachesSettings)
    sdf = flow.source(PRODUCT_UPDATED, parse)  # Inbound((productId, version)), keyed by productId
    sdf = sdf.apply(invalidation_step(settings.floor_ttl_s * 1000), stateful=True)  # Projected | None
    sdf = sdf.filter(lambda p: p is not None)
    sdf.sink(flow.redis_sink())  # SET product:{id}:floor version; DEL product:{id} gql:product:{id}


SETTINGS = ServingCachesSettings
