"""Carts: a user's open cart, its items, and checkout into an order."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from shopstream.domain import Conflict, Invalid, NotFound


async def create(conn: asyncpg.Connection, user_id: str) -> dict[str, Any]:
    cart_id = uuid.uuid4()
    await conn.execute("INSERT INTO carts (id, user_id) VALUES ($1, $2)", cart_id, user_id)
    return await get(conn, str(cart_id))


def _cart_id(cart_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(cart_id)
    except ValueError as exc:
        raise NotFound("Cart", cart_id) from exc


async def owner(conn: asyncpg.Connection, cart_id: str) -> dict[str, str]:
    row = await conn.fetchrow("SELECT user_id, status FROM carts WHERE id = $1", _cart_id(cart_id))
    if row is None:
        raise NotFound("Cart", cart_id)
    return {"owner": row["user_id"], "status": row["status"]}


async def get(conn: asyncpg.Connection, cart_id: str) -> dict[str, Any]:
    cid = _cart_id(cart_id)
    row = await conn.fetchrow(
        "SELECT id, user_id, status, order_id, created_at, updated_at FROM carts WHERE id = $1", cid
    )
    if row is None:
        raise NotFound("Cart", cart_id)
    items = await conn.fetch(
        "SELECT ci.product_id, ci.qty, h.amount_minor, h.currency FROM cart_items ci "
        "JOIN product_price_history h ON h.product_id = ci.product_id AND h.valid_to IS NULL "
        "WHERE ci.cart_id = $1 ORDER BY ci.product_id",
        cid,
    )
    return {
        "id": str(row["id"]),
        "userId": row["user_id"],
        "status": row["status"],
        "orderId": row["order_id"],
        "items": [
            {
                "productId": i["product_id"],
                "qty": i["qty"],
                "unitPriceMinor": i["amount_minor"],
                "currency": i["currency"].strip(),
            }
            for i in items
        ],
        "createdAt": row["created_at"].isoformat(),
        "updatedAt": row["updated_at"].isoformat(),
    }


async def set_item(conn: asyncpg.Connection, cart_id: str, product_id: str, qty: int) -> dict[str, Any]:
    """Set a line's quantity; 0 removes it."""
    cid = _cart_id(cart_id)
    await _open(conn, cid, cart_id)
    if qty == 0:
        await conn.execute("DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2", cid, product_id)
    else:
        active = await conn.fetchval("SELECT active FROM products WHERE id = $1", product_id)
        if not active:
            raise Invalid(
                f"unknown or withdrawn product {product_id}",
                invalid_params=[{"name": "productId", "reason": "unknown"}],
            )
        await conn.execute(
            "INSERT INTO cart_items (cart_id, product_id, qty) VALUES ($1, $2, $3) "
            "ON CONFLICT (cart_id, product_id) DO UPDATE SET qty = EXCLUDED.qty",
            cid,
            product_id,
            qty,
        )
    await conn.execute("UPDATE carts SET updated_at = now() WHERE id = $1", cid)
    return await get(conn, cart_id)


async def lines_for_checkout(conn: asyncpg.Connection, cart_id: str) -> list[tuple[str, int]]:
    """The lines to order (read outside the order's transaction; `checked_out` inside it decides)."""
    cid = _cart_id(cart_id)
    status = await conn.fetchval("SELECT status FROM carts WHERE id = $1", cid)
    if status is None:
        raise NotFound("Cart", cart_id)
    if status != "OPEN":
        raise _checked_out(f"cart {cart_id} is {status}")
    rows = await conn.fetch("SELECT product_id, qty FROM cart_items WHERE cart_id = $1 ORDER BY product_id", cid)
    if not rows:
        raise Invalid("the cart is empty")
    return [(r["product_id"], r["qty"]) for r in rows]


async def checked_out(conn: asyncpg.Connection, cart_id: str, order_id: str) -> None:
    """Inside the order's transaction: only one checkout of a cart can commit."""
    done = await conn.fetchval(
        "UPDATE carts SET status = 'CHECKED_OUT', order_id = $2, updated_at = now() "
        "WHERE id = $1 AND status = 'OPEN' RETURNING 1",
        _cart_id(cart_id),
        order_id,
    )
    if not done:
        raise _checked_out(f"cart {cart_id} is not open")


def _checked_out(detail: str) -> Conflict:
    return Conflict(detail, code="cart-checked-out", title="Cart already checked out")


async def _open(conn: asyncpg.Connection, cid: uuid.UUID, cart_id: str) -> None:
    status = await conn.fetchval("SELECT status FROM carts WHERE id = $1 FOR UPDATE", cid)
    if status is None:
        raise NotFound("Cart", cart_id)
    if status != "OPEN":
        raise _checked_out(f"cart {cart_id} is {status}")
