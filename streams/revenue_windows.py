"""revenue_windows: order.paid / order.canceled (/ order.fulfilled to forget an order) →
event-time tumbling windows of 1 minute and 1 day per currency, net of cancellations of paid
orders, with a grace period for late events → Redis `revenue:{1m|1d}:{currency}:{start ms}`
(running values for the live dashboard, then the final one) and the compacted
`ecommerce.analytics.revenue_window.updated.v1` topic that the OLAP layer lands.

The logic is `shopstream.domain.revenue`; this module wires its two keyed steps around a
repartition by currency."""

from __future__ import annotations

from typing import Any

from shopstream.domain import event_type
from shopstream.domain.revenue import OrderRevenue, RevenueDelta, RevenueWindows, WindowValue, revenue_delta
from streams.runtime import Dataflow, Inbound, KeyState, Projected, Ranking, RedisWrite, derived_record, record_key
from streams.settings import RevenueWindowsSettings

NAME = "revenue_windows"
SUMMARY = "order.paid/canceled → revenue per 1m/1d window and currency in Redis + topic"
PAID = event_type("ecommerce.order.order.paid.v1")
CANCELED = event_type("ecommerce.order.order.canceled.v1")
FULFILLED = event_type("ecommerce.order.order.fulfilled.v1")
WINDOW = event_type("ecommerce.analytics.revenue_window.updated.v1")
REDIS_KEY = "revenue:{window}:{currency}:{start}"
CURRENCIES = "revenue:currencies"


def parse(event: dict[str, Any]) -> dict[str, Any]:
    """The event itself, once it is known to carry what step 1 reads."""
    p = event["payload"]
    if not p["orderId"]:
        raise ValueError("an order event without an orderId")
    if event["eventType"] == PAID.name:
        amount = p["amount"]
        if amount["amountMinor"] < 0 or len(amount["currency"]) != 3:
            raise ValueError(f"not a payment amount: {amount}")
    return event


def order_step(inbound: Inbound, state: KeyState) -> list[dict[str, Any]]:
    """Step 1, keyed by order: the revenue changes this event books, as JSON for the repartition."""
    current = state.get("order")
    order, deltas = revenue_delta(None if current is None else OrderRevenue.from_state(current), inbound.value)
    if order.to_state() != current:
        state.set("order", order.to_state())
    return [
        {"delta": d.to_state(), "traceId": inbound.trace_id, "correlationId": inbound.correlation_id} for d in deltas
    ]


def window_step(grace_ms: int, ttl_s: dict[str, int]) -> Any:
    def step(item: dict[str, Any], state: KeyState) -> list[Projected]:
        """Step 2, keyed by currency: book the delta; running and final window values."""
        delta = RevenueDelta.from_state(item["delta"])
        current = state.get("windows")
        windows = RevenueWindows.from_state(current) if current else RevenueWindows(delta.currency, grace_ms)
        values = windows.apply(delta)
        state.set("windows", windows.to_state())
        cause = Inbound(delta, item["traceId"], item["correlationId"])
        return [project(v, cause, ttl_s) for v in values]

    return step


def project(value: WindowValue, cause: Inbound, ttl_s: dict[str, int]) -> Projected:
    record = value.to_record()
    fields = {
        "amountMinor": str(value.amount_minor),
        "currency": value.currency,
        "orders": str(value.orders),
        "windowStart": str(value.start),
        "windowEnd": str(value.end),
        "final": "1" if value.final else "0",
    }
    key = REDIS_KEY.format(window=value.window, currency=value.currency, start=value.start)
    return Projected(
        derived_record(WINDOW, record, value.version, value.end, cause, NAME),
        RedisWrite(key, value.version, fields, value.end + ttl_s[value.window] * 1000),
        # which currencies have revenue, by their latest window: what the dashboard lists
        (Ranking(CURRENCIES, value.currency, value.start, value.start),),
    )


def build(flow: Dataflow) -> None:
    settings = flow.settings
    assert isinstance(settings, RevenueWindowsSettings)
    sdf = (
        flow.source(PAID, parse).concat(flow.source(CANCELED, parse)).concat(flow.source(FULFILLED, parse))
    )  # Inbound(order event), keyed by orderId
    sdf = sdf.apply(order_step, stateful=True, expand=True)  # {"delta": {...}, "traceId": ...} per change
    sdf = sdf.group_by(lambda d: d["delta"]["currency"], name="currency")  # same, keyed by currency
    ttl = {"1m": settings.minute_ttl_s, "1d": settings.day_ttl_s}
    sdf = sdf.apply(window_step(settings.grace_ms, ttl), stateful=True, expand=True)  # Projected per window value
    sdf = sdf.to_topic(flow.projection_topic(WINDOW), key=record_key)  # the window record, keyed by windowId
    sdf.sink(flow.redis_sink())  # HSET revenue:{window}:{currency}:{start} amountMinor orders final ...


SETTINGS = RevenueWindowsSettings
