"""orders_by_customer: the order events → one row per order in Cassandra's `orders_by_customer`
table, partitioned by customer, newest first (`GET /api/v1/customers/me/orders`).

A row holds the order's status, total, lines, when it entered each status, and the trace id of
the request that placed it. The four order events travel on four topics, so they can be read in
any order: the stage keeps, per order, what it has seen, and writes the row once the
order.created event (which carries the customer, the lines and the creation time that orders the
partition) has been read. The status is the highest-ranked one seen (`shopstream.domain.orders`):
a late or redelivered event never moves an order back, and the time of every status is kept.

The row's version is the number of distinct events the order has had (a duplicate adds none), and
the Cassandra sink writes it as the row's timestamp: a replay or a reordered batch cannot put an
older view back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from shopstream.domain import OrderStatus, event_type
from shopstream.domain.orders import STATUS_RANK
from shopstream.domain.typed_events import BadEvent, OrderCanceled, OrderCreated, OrderEvent, OrderFulfilled, OrderPaid
from streams.core import BaseStage, Item, Projection, Row, Stepped, Write
from streams.settings import OrdersByCustomerSettings

NAME = "orders_by_customer"
SUMMARY = "order events → Cassandra orders_by_customer (per customer, newest first)"
SETTINGS = OrdersByCustomerSettings
ORDER_EVENTS = tuple(
    event_type(f"ecommerce.order.order.{kind}.v1") for kind in ("created", "paid", "fulfilled", "canceled")
)
TABLE = "orders_by_customer"
OUTPUTS = (f"cassandra {TABLE}",)
STATUS_OF: dict[type[Any], OrderStatus] = {
    OrderCreated: OrderStatus.PENDING,
    OrderPaid: OrderStatus.PAID,
    OrderFulfilled: OrderStatus.FULFILLED,
    OrderCanceled: OrderStatus.CANCELED,
}
RANK_OF = {status.value: rank for status, rank in STATUS_RANK.items()}


def check(event: OrderEvent) -> None:
    if not event.order_id or not event.user_id:
        raise BadEvent("an order event without an orderId or a userId")


class CustomerOrder(msgspec.Struct):
    """What the stage knows of one order (mutable: the stage's own state)."""

    customer_id: str
    status: str = ""  # "" until an event with a status was seen
    created_at: int | None = None  # epoch ms; None until order.created was read
    total_minor: int = 0
    currency: str = ""
    lines: list[tuple[str, int, int]] = msgspec.field(default_factory=list)  # (productId, qty, unit price)
    status_changed_at: dict[str, int] = msgspec.field(default_factory=dict)  # status → epoch ms
    trace_id: str = ""
    updated_at: int = 0


class OrderStage(BaseStage[Any, Any]):
    """Keyed by orderId: fold the order's events; one row per changed order per batch."""

    name = "order"
    forwards = False

    def step(self, key: str, state: CustomerOrder | None, items: Sequence[Item[OrderEvent]]) -> Stepped[CustomerOrder]:
        changed = False
        for item in items:  # Item(OrderCreated | OrderPaid | OrderFulfilled | OrderCanceled), keyed by orderId
            event = item.value
            status = STATUS_OF[type(event)].value
            if state is None:
                state = CustomerOrder(event.user_id)
            if status in state.status_changed_at:
                continue  # a redelivery
            at = event.envelope.occurred_at
            state.status_changed_at[status] = at
            if RANK_OF[status] > RANK_OF.get(state.status, 0):
                state.status = status
            if isinstance(event, OrderCreated):
                state.created_at = at
                state.total_minor, state.currency = event.total_amount.amount_minor, event.total_amount.currency
                state.lines = [(i.product_id, i.qty, i.unit_price.amount_minor) for i in event.items]
                state.trace_id = item.trace_id
            state.updated_at = max(state.updated_at, at)
            changed = True
        if state is None:
            return Stepped(None)
        return Stepped(state, self.current(key, state) if changed else [])

    def current(self, key: str, state: CustomerOrder) -> list[Write]:
        if state.created_at is None:
            return []  # no row before the order.created event: it holds the row's clustering key
        values = {
            "status": state.status,
            "total_minor": state.total_minor,
            "currency": state.currency,
            "item_count": sum(qty for _, qty, _ in state.lines),
            # the order_line type's fields in their order (product_id, quantity, unit_price_minor)
            "order_lines": [tuple(line) for line in state.lines],
            "status_changed_at": dict(state.status_changed_at),
            "trace_id": state.trace_id,
            "updated_at": state.updated_at,
            "version": len(state.status_changed_at),
        }
        row_key = (("customer_id", state.customer_id), ("created_at", state.created_at), ("order_id", key))
        return [Row(TABLE, row_key, len(state.status_changed_at), values)]

    def dump(self, state: CustomerOrder) -> Any:
        return msgspec.to_builtins(state)

    def load(self, data: Any) -> CustomerOrder:
        return msgspec.convert(data, CustomerOrder)


def projection(settings: OrdersByCustomerSettings) -> Projection:
    return Projection(NAME, ORDER_EVENTS, (OrderStage(),), check=check, stores=("cassandra",), tables=(TABLE,))
