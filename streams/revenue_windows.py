"""revenue_windows: order.paid / order.canceled (/ order.fulfilled to forget an order) →
event-time tumbling windows of 1 minute and 1 day per currency, net of cancellations of paid
orders, with a grace period for late events → Redis `revenue:{1m|1d}:{currency}:{start ms}`
(running values for the live dashboard, then the final one) and the compacted
`ecommerce.analytics.revenue_window.updated.v1` topic that the OLAP layer lands.

The rules are `shopstream.domain.revenue`; this module is its two stages: per order (what each
event books), then per currency (the windows), the engine re-keying between them. The watermark
the windows close by is the kernel's: the minimum of the input partitions' progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shopstream.domain import event_type
from shopstream.domain.revenue import OrderRevenue, RevenueDelta, RevenueWindows, WindowValue, revenue_delta
from shopstream.domain.typed_events import BadEvent, OrderEvent, OrderPaid
from streams.core import BaseStage, Emit, Item, Projection, Rank, Stepped, Upsert, Write
from streams.settings import RevenueWindowsSettings

NAME = "revenue_windows"
SUMMARY = "order.paid/canceled → revenue per 1m/1d window and currency in Redis + topic"
SETTINGS = RevenueWindowsSettings
PAID = event_type("ecommerce.order.order.paid.v1")
CANCELED = event_type("ecommerce.order.order.canceled.v1")
FULFILLED = event_type("ecommerce.order.order.fulfilled.v1")
WINDOW = event_type("ecommerce.analytics.revenue_window.updated.v1")
REDIS_KEY = "revenue:{window}:{currency}:{start}"
CURRENCIES = "revenue:currencies"
OUTPUTS = (WINDOW.topic, "redis revenue:{1m|1d}:{currency}:{start}", f"redis {CURRENCIES}")


def check(event: OrderEvent) -> None:
    if not event.order_id:
        raise BadEvent("an order event without an orderId")
    if isinstance(event, OrderPaid) and event.amount.amount_minor < 0:
        raise BadEvent(f"not a payment amount: {event.amount}")


class OrderStage(BaseStage[Any, Any]):
    """Keyed by orderId: the revenue changes each event books, forwarded keyed by currency."""

    name = "order"
    forwards = True

    def step(self, key: str, state: OrderRevenue | None, items: Sequence[Item[OrderEvent]]) -> Stepped[OrderRevenue]:
        forward: list[Item[Any]] = []
        for item in items:  # Item(OrderPaid | OrderCanceled | OrderFulfilled), keyed by orderId
            state, deltas = revenue_delta(state, item.value)
            for i, delta in enumerate(deltas):
                forward.append(item.forward(delta.currency, delta, i, delta.at))  # Item(RevenueDelta), by currency
        return Stepped(state, [], forward)

    def current(self, key: str, state: OrderRevenue) -> list[Write]:
        return []  # writes nothing itself: its deltas are in the windows' state

    def downstream(self, key: str, state: OrderRevenue) -> list[str]:
        return [state.currency] if state.paid else []  # the windows its deltas went to

    def dump(self, state: OrderRevenue) -> Any:
        return state.to_state()

    def load(self, data: Any) -> OrderRevenue:
        return OrderRevenue.from_state(data)


class WindowStage(BaseStage[Any, Any]):
    """Keyed by currency: book the deltas, then close what the watermark passed; one write per
    changed window (its newest value)."""

    name = "windows"
    forwards = False
    ticks = True

    def __init__(self, grace_ms: int, ttl_s: dict[str, int]) -> None:
        self.grace_ms, self.ttl_s = grace_ms, ttl_s

    def step(
        self, key: str, state: RevenueWindows | None, items: Sequence[Item[RevenueDelta]]
    ) -> Stepped[RevenueWindows]:
        windows = state or RevenueWindows(key, self.grace_ms)
        # each window the batch changed, once: its newest value (running, or final when an item's
        # watermark closed it), named by the item that made it
        latest: dict[tuple[str, int], tuple[WindowValue, Item[RevenueDelta]]] = {}
        for item in items:  # Item(RevenueDelta), keyed by currency
            for value in windows.apply(item.value) + windows.advance(item.watermark):
                latest[(value.window, value.start)] = (value, item)
        writes: list[Write] = []
        for value, item in latest.values():
            writes += self.project([value], item.trace_id, item.correlation_id)
        return Stepped(windows, writes)

    def current(self, key: str, state: RevenueWindows) -> list[Write]:
        return self.project(state.current(), "", "")

    def advance(self, key: str, state: RevenueWindows, watermark: int) -> list[Write]:
        return self.project(state.advance(watermark), "", "")  # the windows it closed, final

    def project(self, values: list[WindowValue], trace_id: str, correlation_id: str) -> list[Write]:
        writes: list[Write] = []
        for value in values:
            fields = {
                "amountMinor": str(value.amount_minor),
                "currency": value.currency,
                "orders": str(value.orders),
                "windowStart": str(value.start),
                "windowEnd": str(value.end),
                "final": "1" if value.final else "0",
            }
            key = REDIS_KEY.format(window=value.window, currency=value.currency, start=value.start)
            expire = value.end + self.ttl_s[value.window] * 1000
            writes += [
                Upsert(key, value.version, fields, expire),  # HSET revenue:{window}:{currency}:{start} …
                # which currencies have revenue, by their latest window: what the dashboard lists
                Rank(CURRENCIES, value.currency, value.start, value.start),
                Emit(WINDOW, value.version, value.to_record(), value.end, trace_id, correlation_id, NAME),
            ]
        return writes

    def dump(self, state: RevenueWindows) -> Any:
        return state.to_state()

    def load(self, data: Any) -> RevenueWindows:
        return RevenueWindows.from_state(data)


def projection(settings: RevenueWindowsSettings) -> Projection:
    ttl = {"1m": settings.minute_ttl_s, "1d": settings.day_ttl_s}
    return Projection(
        NAME,
        (PAID, CANCELED, FULFILLED),
        (OrderStage(), WindowStage(settings.grace_ms, ttl)),
        emits=(WINDOW,),
        check=check,
        redis_keys=("revenue:*",),
    )
