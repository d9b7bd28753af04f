"""Per-request batch loaders of the GraphQL API (one round trip per kind of data, whatever the
query's shape), and the cached `product(id)` aggregate (`gql:product:{id}`, 30 s, dropped with
the product's cache entry by the serving_caches dataflow)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from strawberry.dataloader import DataLoader

from serving_api.resources import Resources
from serving_api.services import pricing, product_cache
from shopstream.domain.inventory import available

log = logging.getLogger("shopstream.graphql")
AGGREGATE, FLOOR = "gql:product:{}", "product:{}:floor"
AGGREGATE_TTL_MS = 30_000
_PUT = product_cache._PUT  # the same floor-respecting write


@dataclass
class Loaders:
    res: Resources
    products: DataLoader[str, dict[str, Any] | None] = field(init=False)
    inventory: DataLoader[str, dict[str, Any] | None] = field(init=False)
    flash: DataLoader[str, dict[str, Any] | None] = field(init=False)

    def __post_init__(self) -> None:
        self.products = DataLoader(load_fn=self._products)
        self.inventory = DataLoader(load_fn=self._inventory)
        self.flash = DataLoader(load_fn=self._flash)

    async def _products(self, ids: list[str]) -> list[dict[str, Any] | None]:
        found = await product_cache.products(self.res.pool, self.res.cache, ids)
        return [found.get(i) for i in ids]

    async def _inventory(self, ids: list[str]) -> list[dict[str, Any] | None]:
        """The snapshot projection first; Postgres for products it has not seen yet."""
        snapshots: list[dict[str, Any]] = []
        try:
            async with self.res.cache.pipeline(transaction=False) as pipe:
                for i in ids:
                    pipe.hgetall(f"inventory:{i}")
                snapshots = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("inventory snapshot unavailable: %s", exc)
            snapshots = [{} for _ in ids]
        out: dict[str, dict[str, Any]] = {}
        for i, snap in zip(ids, snapshots, strict=True):
            if snap:
                s = {_text(k): _text(v) for k, v in snap.items()}
                out[i] = _stock(i, int(s["onHand"]), int(s["reserved"]), int(s["version"]))
        missing = [i for i in ids if i not in out]
        if missing:
            async with self.res.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT product_id, on_hand, reserved, version FROM inventory_stock WHERE product_id = ANY($1)",
                    missing,
                )
            out.update({r["product_id"]: _stock(*r) for r in rows})
        return [out.get(i) for i in ids]

    async def _flash(self, ids: list[str]) -> list[dict[str, Any] | None]:
        found = await pricing.flash_prices(self.res.cache, ids, datetime.now(UTC))
        return [found.get(i) for i in ids]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stock(product_id: str, on_hand: int, reserved: int, version: int) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "on_hand": on_hand,
        "reserved": reserved,
        "available": available(on_hand, reserved),
        "version": version,
    }


async def product_view(loaders: Loaders, product_id: str) -> dict[str, Any] | None:
    """{"product", "inventory"} for one product: the cached aggregate, or built from the
    loaders and cached for 30 s (unless a newer version of the product was announced)."""
    cache = loaders.res.cache
    try:
        raw = await cache.get(AGGREGATE.format(product_id))
    except (RedisError, OSError):
        raw = None
    if raw is not None:
        cached: dict[str, Any] = json.loads(raw)
        if product_cache.current_shape(cached["product"]):
            return cached
    product = await loaders.products.load(product_id)
    if product is None:
        return None
    # the flash price is not part of it: read per request (a sale ended early shows at once, and
    # an unreadable price map fails only the price fields, not the product)
    view = {"product": product, "inventory": await loaders.inventory.load(product_id)}
    try:
        await cache.register_script(_PUT)(
            keys=[AGGREGATE.format(product_id), FLOOR.format(product_id)],
            args=[json.dumps(view, separators=(",", ":")), product["version"], AGGREGATE_TTL_MS],
        )
    except (RedisError, OSError) as exc:
        log.warning("gql aggregate not cached: %s", exc)
    return view
