"""Fulfilling an order: PAID -> FULFILLED, its reserved units leave stock, with order.fulfilled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from serving_api.services import inventory
from serving_api.services.orders.queries import get
from serving_api.services.orders.status import check, move
from shopstream.domain import Conflict, OrderStatus, event_type
from shopstream.runtime.context import Context
from shopstream.runtime.postgres import unit_of_work

FULFILLED = event_type("ecommerce.order.order.fulfilled.v1")


async def fulfill(
    pool: asyncpg.Pool, ctx: Context, user_id: str, order_id: str, tracking_number: str | None
) -> dict[str, Any]:
    """PAID -> FULFILLED; the reserved units leave stock (a Conflict when none are reserved)."""
    async with unit_of_work(pool) as conn:
        order = await get(conn, order_id, lock=True)
        check(order, OrderStatus.FULFILLED)
        if not await inventory.commit(conn, ctx, order_id):
            raise Conflict(
                f"{order_id} holds no reserved stock to ship; it was released or never made",
                code="no-reservation",
                title="Nothing reserved for this order",
            )
        await move(conn, order_id, OrderStatus.PAID, OrderStatus.FULFILLED, user_id, None)
        await ctx.publish(
            conn,
            FULFILLED,
            {
                "orderId": order_id,
                "userId": order["userId"],
                "fulfilledAt": datetime.now().astimezone(),
                "trackingNumber": tracking_number,
            },
        )
        return await get(conn, order_id)
