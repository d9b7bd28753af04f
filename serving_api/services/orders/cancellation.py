"""Canceling an order: PENDING -> CANCELED, its reserved stock released in the same transaction
(the compensation), with order.canceled."""

from __future__ import annotations

from typing import Any

import asyncpg

from serving_api.services import inventory
from serving_api.services.orders.payment import DEFAULT_INTENT_TTL_S, PaymentInProgress, in_flight
from serving_api.services.orders.queries import get
from serving_api.services.orders.status import check, move
from shopstream.domain import OrderStatus, event_type
from shopstream.runtime.context import Context
from shopstream.runtime.postgres import unit_of_work

CANCELED = event_type("ecommerce.order.order.canceled.v1")


async def cancel(
    pool: asyncpg.Pool,
    ctx: Context,
    user_id: str,
    order_id: str,
    reason: str,
    intent_ttl_s: float = DEFAULT_INTENT_TTL_S,
) -> dict[str, Any]:
    """PENDING -> CANCELED; the compensation (stock release) commits in the same transaction.
    PaymentInProgress while a capture of the order is in flight."""
    async with unit_of_work(pool) as conn:
        order = await get(conn, order_id, lock=True)
        check(order, OrderStatus.CANCELED)
        if await in_flight(conn, order_id, intent_ttl_s):  # its outcome decides (pay: migration 0007)
            raise PaymentInProgress(
                f"order {order_id} has a payment being captured: cancel once it is booked",
                orderStatus=order["status"],
            )
        released = await inventory.release(conn, ctx, order_id)
        await move(conn, order_id, OrderStatus.PENDING, OrderStatus.CANCELED, user_id, reason)
        await ctx.publish(
            conn,
            CANCELED,
            {
                "orderId": order_id,
                "userId": order["userId"],
                "reason": reason,
                "canceledBy": user_id,
                "releasedItems": [{"productId": p, "qty": q} for p, q in released],
            },
        )
        return await get(conn, order_id)
