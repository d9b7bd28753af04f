"""Flash sales (the pricing service, seed Phase 4): start and end them through the outbox, and
price order lines from the flash-sale price map in Redis (`flash_price:{productId}`, written by
the flash_sale_price_map dataflow; the cache is the authority, seed §7). Reading it fails fast
with no retry (seed §8): an order is better refused than sold at the wrong price."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from serving_api.services import catalog
from shopstream.domain import Conflict, Invalid, Money, NotFound, Unavailable, event_type
from shopstream.domain.envelope import epoch_ms
from shopstream.domain.flash_sales import price_at
from shopstream.runtime.context import Context

log = logging.getLogger("shopstream.pricing")
STARTED = event_type("ecommerce.pricing.flash_sale.started.v1")
ENDED = event_type("ecommerce.pricing.flash_sale.ended.v1")
PRICE_KEY = "flash_price:{}"
# a sale is announced at most this far ahead, and lasts at most this long
MAX_LEAD = timedelta(days=30)
MAX_LENGTH = timedelta(days=7)

SALE_SELECT = (
    "SELECT id, product_id, price_minor, currency, regular_minor, starts_at, ends_at, ended_at, created_by, "
    "ended_by FROM flash_sales"
)


def _sale_json(row: asyncpg.Record, now: datetime) -> dict[str, Any]:
    currency = row["currency"].strip()
    end = row["ended_at"] or row["ends_at"]
    state = "ENDED" if end <= now else "RUNNING" if row["starts_at"] <= now else "SCHEDULED"
    return {
        "id": row["id"],
        "productId": row["product_id"],
        "salePrice": _money(row["price_minor"], currency),
        "regularPrice": _money(row["regular_minor"], currency),
        "startsAt": row["starts_at"].isoformat(),
        "endsAt": row["ends_at"].isoformat(),
        "endedAt": row["ended_at"].isoformat() if row["ended_at"] else None,
        "state": state,
        "createdBy": row["created_by"],
        "endedBy": row["ended_by"],
    }


def _money(minor: int, currency: str) -> dict[str, Any]:
    m = Money(minor, currency)
    return {"amount": str(m.decimal()), "currency": currency, "amountMinor": minor}


async def start_sale(
    conn: asyncpg.Connection,
    ctx: Context,
    user_id: str,
    product_id: str,
    price: Money,
    starts_at: datetime | None,
    ends_at: datetime,
) -> dict[str, Any]:
    """Announce a sale of one product at `price` from `starts_at` (default now) to `ends_at`."""
    now = datetime.now(UTC)
    starts = starts_at or now
    problems = []
    if ends_at <= max(starts, now):
        problems.append({"name": "endsAt", "reason": "must be after startsAt and in the future"})
    if starts - now > MAX_LEAD:
        problems.append({"name": "startsAt", "reason": f"at most {MAX_LEAD.days} days ahead"})
    if ends_at - starts > MAX_LENGTH:
        problems.append({"name": "endsAt", "reason": f"a flash sale lasts at most {MAX_LENGTH.days} days"})
    if problems:
        raise Invalid("the sale's time window is not valid", invalid_params=problems)
    product = await catalog.get(conn, product_id, lock=True)
    if not product.active:
        raise Conflict(f"{product_id} is not for sale", code="product-withdrawn", title="Product withdrawn")
    if price.currency != product.price.currency:
        raise Invalid(
            f"the product is priced in {product.price.currency}",
            invalid_params=[{"name": "salePrice.currency", "reason": f"must be {product.price.currency}"}],
        )
    if price.amount_minor >= product.price.amount_minor:
        raise Invalid(
            f"a sale price is below the regular price {product.price}",
            invalid_params=[{"name": "salePrice.amount", "reason": f"must be below {product.price.decimal()}"}],
        )
    sale_id = f"SALE-{uuid.uuid4().hex[:12]}"
    row = await conn.fetchrow(
        "INSERT INTO flash_sales (id, product_id, price_minor, currency, regular_minor, starts_at, ends_at, "
        "created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        sale_id,
        product_id,
        price.amount_minor,
        price.currency,
        product.price.amount_minor,
        starts,
        ends_at,
        user_id,
    )
    await ctx.publish(
        conn,
        STARTED,
        {
            "saleId": sale_id,
            "productId": product_id,
            "salePrice": price.to_avro(),
            "regularPrice": product.price.to_avro(),
            "startsAt": starts,
            "endsAt": ends_at,
        },
    )
    return _sale_json(row, now)


async def end_sale(conn: asyncpg.Connection, ctx: Context, user_id: str, sale_id: str) -> dict[str, Any]:
    """End a sale before its time; ending one that is over is a Conflict."""
    now = datetime.now(UTC)
    row = await conn.fetchrow(SALE_SELECT + " WHERE id = $1 FOR UPDATE", sale_id)
    if row is None:
        raise NotFound("Flash sale", sale_id)
    if row["ended_at"] is not None or row["ends_at"] <= now:
        raise Conflict(
            f"{sale_id} ended at {row['ended_at'] or row['ends_at']}", code="sale-over", title="Flash sale already over"
        )
    row = await conn.fetchrow(
        "UPDATE flash_sales SET ended_at = $2, ended_by = $3 WHERE id = $1 RETURNING *", sale_id, now, user_id
    )
    await ctx.publish(
        conn,
        ENDED,
        {
            "saleId": sale_id,
            "productId": row["product_id"],
            "endsAt": row["ends_at"],
            "endedAt": now,
            "endedBy": user_id,
        },
    )
    return _sale_json(row, now)


async def get_sale(conn: asyncpg.Connection, sale_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(SALE_SELECT + " WHERE id = $1", sale_id)
    if row is None:
        raise NotFound("Flash sale", sale_id)
    return _sale_json(row, datetime.now(UTC))


async def list_sales(conn: asyncpg.Connection, product_id: str | None, include_over: bool) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = await conn.fetch(
        SALE_SELECT + " WHERE ($1::text IS NULL OR product_id = $1) AND ($2 OR (ended_at IS NULL AND ends_at > $3)) "
        "ORDER BY starts_at, id LIMIT 500",
        product_id,
        include_over,
        now,
    )
    return [_sale_json(r, now) for r in rows]


async def flash_prices(cache: aioredis.Redis, product_ids: list[str], at: datetime) -> dict[str, dict[str, Any]]:
    """The sale each product sells at now, from the price map; products without one are absent.
    One round trip, no retry: an unreachable cache is Unavailable for the caller."""
    try:
        async with cache.pipeline(transaction=False) as pipe:
            for product_id in product_ids:
                pipe.hget(PRICE_KEY.format(product_id), "sales")
            cached = await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("flash-sale price map unreadable: %s", exc)
        raise Unavailable(
            "the price map cannot be read; retry",
            code="flash-prices-unavailable",
            title="Flash-sale prices unavailable",
        ) from exc
    now = epoch_ms(at)
    out = {}
    for product_id, raw in zip(product_ids, cached, strict=True):
        if raw:
            sale = price_at(json.loads(raw), now)
            if sale is not None:
                out[product_id] = sale
    return out
