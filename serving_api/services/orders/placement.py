"""Placing an order: price the lines, reserve them over gRPC, then one transaction for the order
and its order.created event (and a checkout's cart); compensate if that commit fails."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from opentelemetry import trace

from serving_api.adapters.inventory import InventoryClient
from serving_api.services import carts, pricing
from serving_api.services.orders.status import record
from serving_api.services.orders.views import new_order
from shopstream.domain import (
    DomainError,
    Invalid,
    Money,
    MoneyError,
    OrderLine,
    OrderStatus,
    Unavailable,
    event_type,
    order_total,
)
from shopstream.runtime.context import Context
from shopstream.runtime.postgres import unit_of_work

log = logging.getLogger("shopstream.orders")
tracer = trace.get_tracer("shopstream.orders")
CREATED = event_type("ecommerce.order.order.created.v1")


async def _priced_lines(
    conn: asyncpg.Connection, cache: aioredis.Redis, lines: list[tuple[str, int]]
) -> list[OrderLine]:
    """Each line at its product's current price, or its running flash sale's price."""
    ids = sorted({p for p, _ in lines})
    rows = await conn.fetch(
        "SELECT p.id, p.active, h.amount_minor, h.currency FROM products p JOIN product_price_history h "
        "ON h.product_id = p.id AND h.valid_to IS NULL WHERE p.id = ANY($1::text[])",
        ids,
    )
    prices = {r["id"]: r for r in rows}
    unknown = [p for p in ids if p not in prices or not prices[p]["active"]]
    if unknown:
        raise Invalid(
            f"unknown or withdrawn products: {', '.join(unknown)}",
            invalid_params=[{"name": "items", "reason": f"unknown product {p}"} for p in unknown],
        )
    unit = {p: Money(r["amount_minor"], r["currency"].strip()) for p, r in prices.items()}
    for product_id, sale in (await pricing.flash_prices(cache, ids, datetime.now(UTC))).items():
        if sale["currency"] == unit[product_id].currency:
            unit[product_id] = Money(sale["priceMinor"], sale["currency"])
    try:
        priced = [OrderLine(p, q, unit[p]) for p, q in lines]
        order_total(priced)
    except MoneyError as exc:
        raise Invalid(f"an order is paid in one currency: {exc}") from exc
    return priced


async def place(
    pool: asyncpg.Pool,
    stock: InventoryClient,
    cache: aioredis.Redis,
    ctx: Context,
    user_id: str,
    lines: list[tuple[str, int]],
    cart_id: str | None = None,
) -> dict[str, Any]:
    """Reserve, then commit the order with its order.created event (and, for a checkout, the cart's
    CHECKED_OUT status, in the same transaction); release the reservation if that commit fails."""
    async with pool.acquire() as conn:
        priced = await _priced_lines(conn, cache, lines)
    order_id = f"ORD-{uuid.uuid4().hex[:16]}"
    try:
        await stock.reserve(order_id, [(line.product_id, line.qty) for line in priced], ctx.correlation_id)
    except Unavailable:  # not a refusal: the reservation may exist even though we got no answer
        await _release_quietly(stock, order_id, ctx)
        raise
    try:
        async with unit_of_work(pool) as conn:
            if cart_id is not None:
                await carts.checked_out(conn, cart_id, order_id)
            total = order_total(priced)
            await conn.execute(
                "INSERT INTO orders (id, user_id, status, total_minor, currency, correlation_id) "
                "VALUES ($1, $2, 'PENDING', $3, $4, $5)",
                order_id,
                user_id,
                total.amount_minor,
                total.currency,
                ctx.correlation_id,
            )
            await conn.executemany(
                "INSERT INTO order_items (order_id, line, product_id, qty, unit_price_minor) "
                "VALUES ($1, $2, $3, $4, $5)",
                [
                    (order_id, i, line.product_id, line.qty, line.unit_price.amount_minor)
                    for i, line in enumerate(priced, 1)
                ],
            )
            await record(conn, order_id, None, OrderStatus.PENDING, user_id, None)
            await ctx.publish(
                conn,
                CREATED,
                {
                    "orderId": order_id,
                    "userId": user_id,
                    "totalAmount": total.to_avro(),
                    "items": [
                        {"productId": line.product_id, "qty": line.qty, "unitPrice": line.unit_price.to_avro()}
                        for line in priced
                    ],
                },
            )
            row = await conn.fetchrow("SELECT created_at, updated_at FROM orders WHERE id = $1", order_id)
            # the commit happens as this block ends; the span marks that step in the trace
            commit_span = tracer.start_span("db.commit order")
        commit_span.end()
        order = new_order(order_id, user_id, priced, ctx.correlation_id, row["created_at"], row["updated_at"])
    except BaseException:
        # compensation: the order did not commit, so its reservation must not stay
        await _release_quietly(stock, order_id, ctx)
        raise
    log.info(
        "order placed",
        extra={"orderId": order_id, "userId": user_id, "traceId": ctx.trace_id, "eventType": CREATED.name},
    )
    return order


async def _release_quietly(stock: InventoryClient, order_id: str, ctx: Context) -> None:
    try:
        await stock.release(order_id, ctx.correlation_id)
    except DomainError:
        log.exception(
            "compensation failed: reservation of %s not released",
            order_id,
            extra={"orderId": order_id, "traceId": ctx.trace_id},
        )
