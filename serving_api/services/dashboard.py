"""The live dashboard's picture of the shop, read from the projections the dataflows keep:
revenue per minute (revenue windows), top products (units ordered), inventory alerts (low
stock) and the flash sales running now."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from serving_api.services import pricing, product_cache

MINUTES = 10


async def snapshot(pool: asyncpg.Pool, cache: aioredis.Redis) -> dict[str, Any]:
    now = int(time.time() * 1000)
    this_minute = now - now % 60_000
    starts = [this_minute - i * 60_000 for i in range(MINUTES)]
    currencies = [c.decode() if isinstance(c, bytes) else c for c in await cache.zrevrange("revenue:currencies", 0, 9)]
    async with cache.pipeline(transaction=False) as pipe:
        for currency in currencies:
            for start in starts:
                pipe.hmget(f"revenue:1m:{currency}:{start}", "amountMinor", "orders", "final")
        pipe.zrevrange("top_products:ordered", 0, 4, withscores=True)
        pipe.zrange("inventory:low", 0, 9, withscores=True)
        answers = await pipe.execute()
    revenue = []
    for i, currency in enumerate(currencies):
        for j, start in enumerate(starts):
            amount, orders, final = answers[i * MINUTES + j]
            if amount is not None:
                revenue.append({"currency": currency, "minute": start, "amountMinor": int(amount),
                                "orders": int(orders), "final": final in (b"1", "1")})  # fmt: skip
    top, low = answers[-2], answers[-1]
    ids = [_text(m) for m, _ in top] + [_text(m) for m, _ in low]
    products = await product_cache.products(pool, cache, list(dict.fromkeys(ids)))
    async with pool.acquire() as conn:
        sales = await pricing.list_sales(conn, None, include_over=False)

    def named(member: Any, score: float, field: str) -> dict[str, Any]:
        product_id = _text(member)
        return {
            "productId": product_id,
            "name": products.get(product_id, {}).get("name", product_id),
            field: int(score),
        }

    return {
        "at": now,
        "revenue": revenue,
        "topProducts": [named(m, s, "unitsOrdered") for m, s in top],
        "lowStock": [named(m, s, "available") for m, s in low],
        "flashSales": [s for s in sales if s["state"] == "RUNNING"],
    }


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
