"""Paying an order: capture its total through the payment adapter (SOAP, else REST); approved,
PENDING -> PAID with order.paid. Every capture is recorded in payment_attempts.

Two transactions around the gateway call, none across it: the first locks the order, checks it
may be paid and records a payment intent (migration 0007); the call runs with no connection held;
the second books the outcome and deletes the intent. A slow gateway therefore holds no pool
connection and no row lock (other requests of the order, and of every other order, go on), and
while the intent is fresh another pay or a cancel of the order is refused (409
payment-in-progress) instead of waiting on a lock."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import asyncpg

from serving_api.payments import PaymentAdapter
from serving_api.payments.adapter import PaymentOutcome
from serving_api.services.orders.queries import get
from serving_api.services.orders.status import check, move
from shopstream.domain import Conflict, Money, OrderStatus, PaymentDeclined, Unavailable, event_type
from shopstream.runtime.context import Context
from shopstream.runtime.postgres import unit_of_work

log = logging.getLogger("shopstream.orders")
PAID = event_type("ecommerce.order.order.paid.v1")
DEFAULT_INTENT_TTL_S = 120.0


class PaymentInProgress(Conflict):
    """A capture of this order is in flight: its outcome decides what the order may do next."""

    code = "payment-in-progress"
    title = "A payment of this order is in progress"


async def in_flight(conn: asyncpg.Connection, order_id: str, ttl_s: float = DEFAULT_INTENT_TTL_S) -> bool:
    """Whether a capture of the order started less than `ttl_s` ago and has not been booked."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM payment_intents WHERE order_id = $1 "
            "AND started_at > now() - make_interval(secs => $2))",
            order_id,
            ttl_s,
        )
    )


async def _claim(conn: asyncpg.Connection, ctx: Context, order_id: str, ttl_s: float) -> None:
    """Record the intent (taking over one older than `ttl_s`: its API died mid-capture)."""
    claimed = await conn.fetchval(
        "INSERT INTO payment_intents (order_id, correlation_id) VALUES ($1, $2) "
        "ON CONFLICT (order_id) DO UPDATE SET started_at = now(), correlation_id = EXCLUDED.correlation_id "
        "WHERE payment_intents.started_at <= now() - make_interval(secs => $3) RETURNING order_id",
        order_id,
        ctx.correlation_id,
        ttl_s,
    )
    if claimed is None:
        raise PaymentInProgress(
            f"order {order_id} has a payment being captured: retry once it is booked",
            orderStatus=OrderStatus.PENDING.value,
        )


async def _forget(pool: asyncpg.Pool, order_id: str) -> None:
    """Delete the intent of a capture that ended without an outcome to book (its error is raised)."""
    try:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM payment_intents WHERE order_id = $1", order_id)
    except (OSError, asyncpg.PostgresError) as exc:  # it expires on its own
        log.warning("could not delete the payment intent of %s: %s", order_id, type(exc).__name__)


async def pay(
    pool: asyncpg.Pool,
    payments: PaymentAdapter,
    ctx: Context,
    user_id: str,
    order_id: str,
    intent_ttl_s: float = DEFAULT_INTENT_TTL_S,
) -> dict[str, Any]:
    """The order, PAID; PaymentDeclined when a gateway said no, Unavailable when both paths failed
    (the order stays PENDING either way, its attempt recorded); PaymentInProgress while another
    capture of it is in flight."""
    async with unit_of_work(pool) as conn:
        order = await get(conn, order_id, lock=True)
        check(order, OrderStatus.PAID)
        await _claim(conn, ctx, order_id, intent_ttl_s)
    amount = Money(order["total"]["amountMinor"], order["total"]["currency"])
    try:
        outcome = await payments.capture(order_id, amount)  # no connection, no lock held
    except BaseException:
        await asyncio.shield(_forget(pool, order_id))
        raise
    async with unit_of_work(pool) as conn:
        order = await get(conn, order_id, lock=True)
        await conn.execute("DELETE FROM payment_intents WHERE order_id = $1", order_id)
        await _book(conn, ctx, order_id, amount, outcome)
        if outcome.approved and order["status"] == OrderStatus.PENDING.value:
            await move(conn, order_id, OrderStatus.PENDING, OrderStatus.PAID, user_id, None)
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
    if outcome.approved:
        # the order moved while its capture ran: only possible once the intent had expired (an API
        # that died mid-capture, then another pay): the capture is booked, the order left as it is
        log.error(
            "payment %s captured for order %s, which is %s: it needs a refund",
            outcome.payment_id,
            order_id,
            order["status"],
            extra={"orderId": order_id, "traceId": ctx.trace_id},
        )
        raise Conflict(
            f"the order became {order['status']} while its payment was captured; payment"
            f" {outcome.payment_id} is recorded for a refund",
            code="order-moved-during-payment",
            paymentId=outcome.payment_id,
            orderStatus=order["status"],
        )
    # not approved: the attempt is committed, the order stays PENDING
    pending = OrderStatus.PENDING.value
    if outcome.status == "FAILED":
        raise Unavailable(
            outcome.reason or "",
            code="payment-unavailable",
            title="Payment gateways unavailable",
            gateway=outcome.gateway,
            fallback=outcome.fallback,
            orderStatus=pending,
        )
    raise PaymentDeclined(
        outcome.reason or "declined by the gateway",
        paymentId=outcome.payment_id,
        gateway=outcome.gateway,
        fallback=outcome.fallback,
        orderStatus=pending,
    )


async def _book(conn: asyncpg.Connection, ctx: Context, order_id: str, amount: Money, outcome: PaymentOutcome) -> None:
    """The capture's rows: its payment (approved or declined) and the attempt."""
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
