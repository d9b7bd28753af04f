"""An order as the APIs show it: JSON with money as a decimal string plus its minor units, times
in ISO 8601, its lines and its status history.

    {"id": "ORD-…", "userId", "status": "PENDING", "version": 1,
     "total": {"amount": "20.00", "currency": "USD", "amountMinor": 2000}, "correlationId",
     "items": [{"line": 1, "productId", "qty", "unitPrice": {…}}],
     "history": [{"from": None, "to": "PENDING", "by", "reason", "at"}], "createdAt", "updatedAt"}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shopstream.domain import Money, OrderLine, OrderStatus, order_total


def money(amount_minor: int, currency: str) -> dict[str, Any]:
    m = Money(amount_minor, currency.strip())
    return {"amount": str(m.decimal()), "currency": m.currency, "amountMinor": m.amount_minor}


def iso(value: datetime) -> str:
    return value.isoformat()


def stored_order(
    row: asyncpg.Record, items: Sequence[asyncpg.Record], history: Sequence[asyncpg.Record]
) -> dict[str, Any]:
    """From its rows: `orders`, `order_items` by line, `order_status_history` in order."""
    currency = row["currency"].strip()
    return {
        "id": row["id"],
        "userId": row["user_id"],
        "status": row["status"],
        "version": row["version"],
        "total": money(row["total_minor"], currency),
        "correlationId": row["correlation_id"],
        "items": [
            {
                "line": i["line"],
                "productId": i["product_id"],
                "qty": i["qty"],
                "unitPrice": money(i["unit_price_minor"], currency),
            }
            for i in items
        ],
        "history": [
            {
                "from": h["from_status"],
                "to": h["to_status"],
                "by": h["changed_by"],
                "reason": h["reason"],
                "at": iso(h["changed_at"]),
            }
            for h in history
        ],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def new_order(
    order_id: str, user_id: str, priced: list[OrderLine], correlation_id: str, created: datetime, updated: datetime
) -> dict[str, Any]:
    """The body `get` would return for an order just placed, without reading it back."""
    total = order_total(priced)
    return {
        "id": order_id,
        "userId": user_id,
        "status": OrderStatus.PENDING.value,
        "version": 1,
        "total": money(total.amount_minor, total.currency),
        "correlationId": correlation_id,
        "items": [
            {
                "line": i,
                "productId": line.product_id,
                "qty": line.qty,
                "unitPrice": money(line.unit_price.amount_minor, line.unit_price.currency),
            }
            for i, line in enumerate(priced, 1)
        ],
        "history": [{"from": None, "to": OrderStatus.PENDING.value, "by": user_id, "reason": None, "at": iso(created)}],
        "createdAt": iso(created),
        "updatedAt": iso(updated),
    }
