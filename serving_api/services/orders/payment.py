"""Paying an order: capture its total through the payment adapter (SOAP, else REST); approved,
PENDING -> PAID with order.paid. Every capture is recorded in payment_attempts."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import asyncpg

from serving_api.payments import PaymentAdapter
from serving_api.services.orders.queries import get
from serving_api.services.orders.status import check, move
from shopstream.domain import Money, OrderStatus, PaymentDeclined, Unavailable, event_type
from shopstream.runtime.context import Context
from shopstream.runtime.postgres import unit_of_work

log = logging.getLogger("shopstream.orders")
PAID = event_type("ecommerce.order.order.paid.v1")


async def pay(
    pool: asyncpg.Pool, payments: PaymentAdapter, ctx: Context, user_id: str, order_id: str
) -> dict[str, Any]:
    """The order, PAID; PaymentDeclined when a gateway said no, Unavailable when both paths failed
    (the order stays PENDING either way, its attempt recorded)."""
    async with unit_of_work(pool) as conn:
        order = await get(conn, order_id, lock=True)  # held across the capture: pay and cancel cannot race
        check(order, OrderStatus.PAID)
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
