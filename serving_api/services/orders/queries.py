"""Reading an order: the whole of it (views.stored_order's shape), or what the policy asks about."""

from __future__ import annotations

from typing import Any

import asyncpg

from serving_api.services.orders.views import stored_order
from shopstream.domain import NotFound


async def get(conn: asyncpg.Connection, order_id: str, *, lock: bool = False) -> dict[str, Any]:
    """The order with its lines and history; `lock` holds its row until the transaction ends."""
    row = await conn.fetchrow("SELECT * FROM orders WHERE id = $1" + (" FOR UPDATE" if lock else ""), order_id)
    if row is None:
        raise NotFound("Order", order_id)
    items = await conn.fetch(
        "SELECT line, product_id, qty, unit_price_minor FROM order_items WHERE order_id = $1 ORDER BY line", order_id
    )
    history = await conn.fetch(
        "SELECT from_status, to_status, changed_by, reason, changed_at FROM order_status_history "
        "WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    return stored_order(row, items, history)


async def owner_and_status(pool: asyncpg.Pool, order_id: str) -> dict[str, str]:
    """What the authorization policy needs to know about an order."""
    row = await pool.fetchrow("SELECT user_id, status FROM orders WHERE id = $1", order_id)
    if row is None:
        raise NotFound("Order", order_id)
    return {"owner": row["user_id"], "status": row["status"]}
