"""The order lifecycle: place (reserve over gRPC, then one transaction for the order and its
event; compensate if that fails), pay, cancel (with the stock released), fulfil."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import redis.asyncio as aioredis
from opentelemetry import trace

from serving_api.adapters.inventory import InventoryClient
from serving_api.http.problems import Problem, conflict, invalid, not_found
from serving_api.observability import RESERVATION_FAILURES
from serving_api.payments import PaymentAdapter
from serving_api.services import carts, inventory, pricing
from shopstream.domain import IllegalTransition, Money, MoneyError, OrderLine, OrderStatus, order_total, transition
from shopstream.domain import event_type as ev
from shopstream.runtime.context import Context
from shopstream.runtime.postgres import unit_of_work

log = logging.getLogger("shopstream.orders")
tracer = trace.get_tracer("shopstream.orders")
# answers that say the reservation was refused (nothing to release)
REFUSALS = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}
CREATED, PAID = ev("ecommerce.order.order.created.v1"), ev("ecommerce.order.order.paid.v1")
CANCELED, FULFILLED = ev("ecommerce.order.order.canceled.v1"), ev("ecommerce.order.order.fulfilled.v1")


def _money(amount_minor: int, currency: str) -> dict[str, Any]:
    m = Money(amount_minor, currency.strip())
    return {"amount": str(m.decimal()), "currency": m.currency, "amountMinor": m.amount_minor}


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
        raise invalid(
            f"unknown or withdrawn products: {', '.join(unknown)}",
            [{"name": "items", "reason": f"unknown product {p}"} for p in unknown],
        )
    unit = {p: Money(r["amount_minor"], r["currency"].strip()) for p, r in prices.items()}
    for product_id, sale in (await pricing.flash_prices(cache, ids, datetime.now(UTC))).items():
        if sale["currency"] == unit[product_id].currency:
            unit[product_id] = Money(sale["priceMinor"], sale["currency"])
    try:
        priced = [OrderLine(p, q, unit[p]) for p, q in lines]
        order_total(priced)
    except MoneyError as exc:
        raise invalid(f"an order is paid in one currency: {exc}") from exc
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
    except grpc.aio.AioRpcError as exc:
        if exc.code() not in REFUSALS:  # the reservation may exist even though we got no answer
            await _release_quietly(stock, order_id, ctx)
        raise _reservation_problem(exc) from exc
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
            await _history(conn, order_id, None, OrderStatus.PENDING, user_id, None)
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
        order = _new_order(order_id, user_id, priced, ctx.correlation_id, row["created_at"], row["updated_at"])
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
    except grpc.aio.AioRpcError:
        log.exception(
            "compensation failed: reservation of %s not released",
            order_id,
            extra={"orderId": order_id, "traceId": ctx.trace_id},
        )


def _new_order(
    order_id: str, user_id: str, priced: list[OrderLine], correlation_id: str, created: datetime, updated: datetime
) -> dict[str, Any]:
    """The body `get` would return for an order just placed, without reading it back."""
    total = order_total(priced)
    return {
        "id": order_id,
        "userId": user_id,
        "status": OrderStatus.PENDING.value,
        "version": 1,
        "total": _money(total.amount_minor, total.currency),
        "correlationId": correlation_id,
        "items": [
            {
                "line": i,
                "productId": line.product_id,
                "qty": line.qty,
                "unitPrice": _money(line.unit_price.amount_minor, line.unit_price.currency),
            }
            for i, line in enumerate(priced, 1)
        ],
        "history": [
            {"from": None, "to": OrderStatus.PENDING.value, "by": user_id, "reason": None, "at": _iso(created)}
        ],
        "createdAt": _iso(created),
        "updatedAt": _iso(updated),
    }


def _reservation_problem(exc: grpc.aio.AioRpcError) -> Problem:
    code = exc.code()
    RESERVATION_FAILURES.labels(code.name.lower()).inc()
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return conflict("insufficient-stock", "Insufficient stock", exc.details() or "")
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        return invalid(exc.details() or "the order's lines were refused")
    return Problem(503, "inventory-unavailable", "Inventory service unavailable", f"{code.name}: {exc.details()}")


async def get(conn: asyncpg.Connection, order_id: str, *, lock: bool = False) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM orders WHERE id = $1" + (" FOR UPDATE" if lock else ""), order_id)
    if row is None:
        raise not_found("Order", order_id)
    items = await conn.fetch(
        "SELECT line, product_id, qty, unit_price_minor FROM order_items WHERE order_id = $1 ORDER BY line", order_id
    )
    history = await conn.fetch(
        "SELECT from_status, to_status, changed_by, reason, changed_at FROM order_status_history "
        "WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    currency = row["currency"].strip()
    return {
        "id": row["id"],
        "userId": row["user_id"],
        "status": row["status"],
        "version": row["version"],
        "total": _money(row["total_minor"], currency),
        "correlationId": row["correlation_id"],
        "items": [
            {
                "line": i["line"],
                "productId": i["product_id"],
                "qty": i["qty"],
                "unitPrice": _money(i["unit_price_minor"], currency),
            }
            for i in items
        ],
        "history": [
            {
                "from": h["from_status"],
                "to": h["to_status"],
                "by": h["changed_by"],
                "reason": h["reason"],
                "at": _iso(h["changed_at"]),
            }
            for h in history
        ],
        "createdAt": _iso(row["created_at"]),
        "updatedAt": _iso(row["updated_at"]),
    }


async def owner_and_status(pool: asyncpg.Pool, order_id: str) -> dict[str, str]:
    """What the authorization policy needs to know about an order."""
    row = await pool.fetchrow("SELECT user_id, status FROM orders WHERE id = $1", order_id)
    if row is None:
        raise not_found("Order", order_id)
    return {"owner": row["user_id"], "status": row["status"]}


async def pay(
    pool: asyncpg.Pool, payments: PaymentAdapter, ctx: Context, user_id: str, order_id: str
) -> dict[str, Any]:
    """Capture the order's total through the payment adapter (SOAP, else REST); approved: PENDING -> PAID
    with order.paid; declined: 402; failed on both paths: 503. Not approved, the order stays PENDING;
    every capture is recorded in payment_attempts."""
    async with unit_of_work(pool) as conn:
        order = await get(conn, order_id, lock=True)  # held across the capture: pay and cancel cannot race
        _check(order, OrderStatus.PAID)
        amount = Money(order["total"]["amountMinor"], order["total"]["currency"])
        outcome = await payments.capture(order_id, amount)
        if outcome.payment_id is not None:
            await conn.execute(
                "INSERT INTO payments (id, order_id, amount_minor, currency, status, gateway, gateway_ref) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                outcome.payment_id,
                order_id,
                amount.amount_minor,
                amount.currency,
                outcome.status,
                outcome.gateway,
                outcome.payment_id,
            )
        await conn.execute(
            "INSERT INTO payment_attempts (order_id, amount_minor, currency, outcome, gateway, payment_id, "
            "soap_attempts, fallback, reason, correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            order_id,
            amount.amount_minor,
            amount.currency,
            outcome.status,
            outcome.gateway,
            outcome.payment_id,
            outcome.soap_attempts,
            outcome.fallback,
            outcome.reason,
            ctx.correlation_id,
        )
        if outcome.approved:
            await _move(conn, order_id, OrderStatus.PENDING, OrderStatus.PAID, user_id, None)
            await ctx.publish(
                conn,
                PAID,
                {
                    "orderId": order_id,
                    "userId": order["userId"],
                    "paymentId": outcome.payment_id,
                    "amount": amount.to_avro(),
                    "paidAt": datetime.now().astimezone(),
                },
            )
            log.info(
                "order paid via %s",
                outcome.gateway,
                extra={"orderId": order_id, "userId": user_id, "traceId": ctx.trace_id, "eventType": PAID.name},
            )
            return await get(conn, order_id)
    # not approved: the attempt is committed, the order stays PENDING
    paths = {"gateway": outcome.gateway, "fallback": outcome.fallback, "orderStatus": OrderStatus.PENDING.value}
    if outcome.status == "FAILED":
        raise Problem(503, "payment-unavailable", "Payment gateways unavailable", outcome.reason or "", **paths)
    raise Problem(
        402,
        "payment-declined",
        "Payment declined",
        outcome.reason or "declined by the gateway",
        paymentId=outcome.payment_id,
        **paths,
    )


async def cancel(pool: asyncpg.Pool, ctx: Context, user_id: str, order_id: str, reason: str) -> dict[str, Any]:
    """PENDING -> CANCELED; the compensation (stock release) commits in the same transaction."""
    async with unit_of_work(pool) as conn:
        order = await get(conn, order_id, lock=True)
        _check(order, OrderStatus.CANCELED)
        released = await inventory.release(conn, ctx, order_id)
        await _move(conn, order_id, OrderStatus.PENDING, OrderStatus.CANCELED, user_id, reason)
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


async def fulfill(
    pool: asyncpg.Pool, ctx: Context, user_id: str, order_id: str, tracking_number: str | None
) -> dict[str, Any]:
    """PAID -> FULFILLED; the reserved units leave stock."""
    async with unit_of_work(pool) as conn:
        order = await get(conn, order_id, lock=True)
        _check(order, OrderStatus.FULFILLED)
        if not await inventory.commit(conn, ctx, order_id):
            raise conflict(
                "no-reservation",
                "Nothing reserved for this order",
                f"{order_id} holds no reserved stock to ship; it was released or never made",
            )
        await _move(conn, order_id, OrderStatus.PAID, OrderStatus.FULFILLED, user_id, None)
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


def _check(order: dict[str, Any], target: OrderStatus) -> None:
    try:
        transition(OrderStatus(order["status"]), target)
    except IllegalTransition as exc:
        raise conflict("illegal-transition", "Illegal order transition", str(exc), orderStatus=order["status"]) from exc


async def _move(
    conn: asyncpg.Connection, order_id: str, current: OrderStatus, target: OrderStatus, user_id: str, reason: str | None
) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, version = version + 1, updated_at = now() WHERE id = $1", order_id, target.value
    )
    await _history(conn, order_id, current, target, user_id, reason)


async def _history(
    conn: asyncpg.Connection,
    order_id: str,
    current: OrderStatus | None,
    target: OrderStatus,
    user_id: str,
    reason: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO order_status_history (order_id, from_status, to_status, changed_by, reason) "
        "VALUES ($1, $2, $3, $4, $5)",
        order_id,
        current.value if current else None,
        target.value,
        user_id,
        reason,
    )


def _iso(value: datetime) -> str:
    return value.isoformat()
