"""The product read-through cache (seed §7): `product:{id}` holds a product's JSON for reads;
the serving_caches dataflow drops it when product.updated arrives (no side channel from the
writers). A read that raced with an update must not put the older copy back: the dataflow also
leaves a floor, `product:{id}:floor` = the newest version it saw, and a copy below the floor is
never written. The cache only speeds reads up: when Redis fails, reads go to Postgres."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from serving_api.observability import PRODUCT_CACHE, PRODUCT_CACHE_HIT_RATIO
from serving_api.services import catalog

log = logging.getLogger("shopstream.cache")
KEY, FLOOR = "product:{}", "product:{}:floor"
TTL_MS = 10 * 60 * 1000  # a safety net; events are what keep it fresh
# KEYS: the entry, its floor; ARGV: the JSON, its version, TTL ms
_PUT = """
local floor = redis.call('GET', KEYS[2])
if floor and tonumber(floor) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
_counts = {"hit": 0, "miss": 0}


def current_shape(product: dict[str, Any]) -> bool:
    """Whether a cached copy has every field the API shows now: copies cached before a field was
    added (`category`, migration 0004) are read as misses and replaced, not served without it."""
    return "category" in product


async def products(pool: asyncpg.Pool, cache: aioredis.Redis, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The products with these ids, as the REST API shows them; unknown ids are absent."""
    found: dict[str, dict[str, Any]] = {}
    try:
        cached = await cache.mget([KEY.format(i) for i in ids]) if ids else []
    except (RedisError, OSError) as exc:
        log.warning("product cache unavailable: %s", exc)
        cached = [None] * len(ids)
    for product_id, raw in zip(ids, cached, strict=True):
        if raw is not None and current_shape(product := json.loads(raw)):
            found[product_id] = product
    missing = [i for i in ids if i not in found]
    _count(len(found), len(missing))
    if missing:
        async with pool.acquire() as conn:
            loaded = await catalog.get_many(conn, missing)
        await _put(cache, loaded)
        found.update({p["id"]: p for p in loaded})
    return found


async def _put(cache: aioredis.Redis, loaded: list[dict[str, Any]]) -> None:
    try:
        script = cache.register_script(_PUT)
        async with cache.pipeline(transaction=False) as pipe:
            for p in loaded:
                await script(
                    keys=[KEY.format(p["id"]), FLOOR.format(p["id"])],
                    args=[json.dumps(p, separators=(",", ":")), p["version"], TTL_MS],
                    client=pipe,
                )
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("product cache not written: %s", exc)


def _count(hits: int, misses: int) -> None:
    if hits:
        PRODUCT_CACHE.labels("hit").inc(hits)
    if misses:
        PRODUCT_CACHE.labels("miss").inc(misses)
    _counts["hit"] += hits
    _counts["miss"] += misses
    total = _counts["hit"] + _counts["miss"]
    if total:
        PRODUCT_CACHE_HIT_RATIO.set(_counts["hit"] / total)
