"""An order's status changes: checked against the state machine (IllegalTransition otherwise),
written with a row of its history."""

from __future__ import annotations

from typing import Any

import asyncpg

from shopstream.domain import OrderStatus, transition


def check(order: dict[str, Any], target: OrderStatus) -> None:
    """IllegalTransition unless the order (as `get` returns it) may become `target`."""
    transition(OrderStatus(order["status"]), target)


async def move(
    conn: asyncpg.Connection, order_id: str, current: OrderStatus, target: OrderStatus, user_id: str, reason: str | None
) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, version = version + 1, updated_at = now() WHERE id = $1", order_id, target.value
    )
    await record(conn, order_id, current, target, user_id, reason)


async def record(
    conn: asyncpg.Connection,
    order_id: str,
    current: OrderStatus | None,
    target: OrderStatus,
    user_id: str,
    reason: str | None,
) -> None:
    """The history row of a change (`current` None: the order was just placed)."""
    await conn.execute(
        "INSERT INTO order_status_history (order_id, from_status, to_status, changed_by, reason) "
        "VALUES ($1, $2, $3, $4, $5)",
        order_id,
        current.value if current else None,
        target.value,
        user_id,
        reason,
    )
