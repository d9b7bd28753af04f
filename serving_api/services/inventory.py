"""Stock: reservation (atomic, all or nothing, idempotent per order), release, commit on
fulfilment and adjustments; every change leaves a stock.adjusted event through the outbox.
Refusals are domain errors: NotFound (unknown products), InsufficientStock, Conflict (the order's
reservation was released or differs), Invalid (an adjustment below what is reserved)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shopstream.domain import Conflict, InsufficientStock, Invalid, NotFound, event_type
from shopstream.domain.inventory import available
from shopstream.runtime.context import Context

STOCK_ADJUSTED = event_type("ecommerce.inventory.stock.adjusted.v1")
RETURNING = "RETURNING product_id, on_hand, reserved, version, updated_at"  # a changed stock row


@dataclass(frozen=True)
class Stock:
    product_id: str
    on_hand: int
    reserved: int
    version: int
    # when the row last changed (clock_timestamp(): taken once the row is locked, so it grows with
    # the version): its stock.adjusted event's occurredAt, so that the row re-read through CDC (a
    # replay's re-seed) says the same as the event
    updated_at: datetime | None = None

    @property
    def available(self) -> int:
        return available(self.on_hand, self.reserved)


def _unknown(product_ids: list[str]) -> NotFound:
    ids = ", ".join(product_ids)
    return NotFound("Product", ids, f"unknown product(s): {ids}")


def _shortage(short: dict[str, tuple[int, int]]) -> str:
    """`{product: (wanted, available)}` in words: "insufficient stock (P-1: wanted 3, available 1)"."""
    return "insufficient stock ({})".format(", ".join(f"{p}: wanted {w}, available {a}" for p, (w, a) in short.items()))


def _reservation_conflict(detail: str) -> Conflict:
    """The order already holds a different (or released) reservation."""
    return Conflict(detail, code="reservation-conflict", title="Reservation conflict")


@dataclass(frozen=True)
class Reservation:
    order_id: str
    already_reserved: bool
    stock: list[Stock]


def _merge(lines: list[tuple[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = defaultdict(int)
    for product_id, qty in lines:
        if qty <= 0:
            raise ValueError(f"quantity of {product_id} must be positive, got {qty}")
        merged[product_id] += qty
    return dict(sorted(merged.items()))


async def query(conn: asyncpg.Connection, product_id: str) -> Stock:
    row = await conn.fetchrow(
        "SELECT product_id, on_hand, reserved, version FROM inventory_stock WHERE product_id = $1", product_id
    )
    if row is None:
        raise _unknown([product_id])
    return Stock(**dict(row))


async def reserve(conn: asyncpg.Connection, ctx: Context, order_id: str, lines: list[tuple[str, int]]) -> Reservation:
    """Reserve every line or none. Row locks are taken in product order (no deadlocks between
    orders), so concurrent reservations never oversell."""
    wanted = _merge(lines)
    await _lock_order(conn, order_id)
    if await conn.fetchval("SELECT 1 FROM inventory_released_orders WHERE order_id = $1", order_id):
        raise _reservation_conflict(f"the reservation of {order_id} was released; it cannot reserve again")
    existing = await conn.fetch(
        "SELECT product_id, qty, status FROM inventory_reservations WHERE order_id = $1 ORDER BY product_id FOR UPDATE",
        order_id,
    )
    if existing:
        held = {r["product_id"]: r["qty"] for r in existing}
        if any(r["status"] != "RESERVED" for r in existing):
            raise _reservation_conflict(f"the reservation of {order_id} was already released or committed")
        if held != wanted:
            raise _reservation_conflict(f"{order_id} already holds a different reservation")
        return Reservation(order_id, True, [await query(conn, p) for p in held])
    rows = await conn.fetch(
        "SELECT product_id, on_hand, reserved, version FROM inventory_stock WHERE product_id = ANY($1::text[]) "
        "ORDER BY product_id FOR UPDATE",
        list(wanted),
    )
    found = {r["product_id"]: Stock(**dict(r)) for r in rows}
    missing = [p for p in wanted if p not in found]
    if missing:
        raise _unknown(missing)
    short = {p: (q, found[p].available) for p, q in wanted.items() if found[p].available < q}
    if short:
        raise InsufficientStock(_shortage(short))
    after = []
    for product_id, qty in wanted.items():
        row = await conn.fetchrow(
            "UPDATE inventory_stock SET reserved = reserved + $2, version = version + 1, "
            f"updated_at = clock_timestamp() WHERE product_id = $1 {RETURNING}",
            product_id,
            qty,
        )
        await conn.execute(
            "INSERT INTO inventory_reservations (order_id, product_id, qty, status) VALUES ($1, $2, $3, 'RESERVED')",
            order_id,
            product_id,
            qty,
        )
        stock = Stock(**dict(row))
        await _adjusted(conn, ctx, stock, -qty, "RESERVATION", order_id)
        after.append(stock)
    return Reservation(order_id, False, after)


async def release(conn: asyncpg.Connection, ctx: Context, order_id: str) -> list[tuple[str, int]]:
    """Give an order's reservation back; [] when there was none left to give. The order is marked
    released either way, so a reservation arriving later for it is refused."""
    await _lock_order(conn, order_id)
    await conn.execute("INSERT INTO inventory_released_orders (order_id) VALUES ($1) ON CONFLICT DO NOTHING", order_id)
    released = await conn.fetch(
        "UPDATE inventory_reservations SET status = 'RELEASED', updated_at = now() "
        "WHERE order_id = $1 AND status = 'RESERVED' RETURNING product_id, qty",
        order_id,
    )
    out = []
    for r in sorted(released, key=lambda r: r["product_id"]):
        row = await conn.fetchrow(
            "UPDATE inventory_stock SET reserved = reserved - $2, version = version + 1, "
            f"updated_at = clock_timestamp() WHERE product_id = $1 {RETURNING}",
            r["product_id"],
            r["qty"],
        )
        await _adjusted(conn, ctx, Stock(**dict(row)), r["qty"], "RELEASE", order_id)
        out.append((r["product_id"], r["qty"]))
    return out


async def release_orphans(conn: asyncpg.Connection, ctx: Context, older_than_seconds: float) -> list[str]:
    """Release reservations whose order never committed (the API died between reserving and
    committing): RESERVED rows older than the given age with no order row."""
    orphans = await conn.fetch(
        "SELECT DISTINCT r.order_id FROM inventory_reservations r LEFT JOIN orders o ON o.id = r.order_id "
        "WHERE r.status = 'RESERVED' AND o.id IS NULL AND r.created_at < now() - make_interval(secs => $1)",
        older_than_seconds,
    )
    released = []
    for row in orphans:
        if await release(conn, ctx, row["order_id"]):
            released.append(row["order_id"])
    return released


async def _lock_order(conn: asyncpg.Connection, order_id: str) -> None:
    """Reserve and release of one order run one after the other, never interleaved."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", order_id)


async def commit(conn: asyncpg.Connection, ctx: Context, order_id: str) -> list[tuple[str, int]]:
    """Fulfilment: the reserved units leave the warehouse (on hand and reserved both drop;
    available does not, so the SHIPMENT adjustment's delta is 0)."""
    committed = await conn.fetch(
        "UPDATE inventory_reservations SET status = 'COMMITTED', updated_at = now() "
        "WHERE order_id = $1 AND status = 'RESERVED' RETURNING product_id, qty",
        order_id,
    )
    for r in sorted(committed, key=lambda r: r["product_id"]):
        row = await conn.fetchrow(
            "UPDATE inventory_stock SET on_hand = on_hand - $2, reserved = reserved - $2, version = version + 1, "
            f"updated_at = clock_timestamp() WHERE product_id = $1 {RETURNING}",
            r["product_id"],
            r["qty"],
        )
        await _adjusted(conn, ctx, Stock(**dict(row)), 0, "SHIPMENT", order_id)
    return [(r["product_id"], r["qty"]) for r in committed]


async def adjust(conn: asyncpg.Connection, ctx: Context, product_id: str, delta: int, reason: str) -> Stock:
    """Restock, sensor or manual correction of on-hand units."""
    if delta == 0:
        raise ValueError("a stock adjustment needs a non-zero delta")
    row = await conn.fetchrow(
        "UPDATE inventory_stock SET on_hand = on_hand + $2, version = version + 1, updated_at = clock_timestamp() "
        f"WHERE product_id = $1 AND on_hand + $2 >= reserved {RETURNING}",
        product_id,
        delta,
    )
    if row is None:
        await query(conn, product_id)  # NotFound when there is none
        shortage = _shortage({product_id: (-delta, 0)})
        raise Invalid(f"on-hand stock cannot go below what is reserved: {shortage}")
    stock = Stock(**dict(row))
    await _adjusted(conn, ctx, stock, delta, reason, None)
    return stock


async def _adjusted(
    conn: asyncpg.Connection, ctx: Context, stock: Stock, delta: int, reason: str, order_id: str | None
) -> None:
    await conn.execute(
        "INSERT INTO inventory_adjustment (product_id, delta, reason, order_id) VALUES ($1, $2, $3, $4)",
        stock.product_id,
        delta,
        reason,
        order_id,
    )
    await ctx.publish(
        conn,
        STOCK_ADJUSTED,
        {
            "productId": stock.product_id,
            "delta": delta,
            "reason": reason,
            "orderId": order_id,
            "available": stock.available,
            "onHand": stock.on_hand,
            "reserved": stock.reserved,
            "stockVersion": stock.version,
        },
        producer="inventory-service",
        occurred_at=stock.updated_at,
    )
