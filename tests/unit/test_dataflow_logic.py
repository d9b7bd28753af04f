"""The dataflows' pure logic (shopstream.domain): laws checked with hypothesis against brute force."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shopstream.domain.events import EventType, event_type
from shopstream.domain.flash_sales import FlashSale, PriceMap, price_at
from shopstream.domain.inventory import StockAdjustment, StockSnapshot, fold_adjustment
from shopstream.domain.money import Money
from shopstream.domain.revenue import (
    WINDOWS,
    OrderRevenue,
    RevenueDelta,
    RevenueWindows,
    WindowValue,
    on_order_canceled,
    on_order_paid,
    revenue_delta,
    window_start,
)
from shopstream.domain.typed_events import Envelope, FlashSaleStarted, OrderCanceled, OrderFulfilled, OrderPaid

# ---------------------------------------------------------------- inventory snapshot

ops = st.lists(
    st.tuples(st.sampled_from(["RESTOCK", "RESERVATION", "RELEASE", "SHIPMENT", "SENSOR"]), st.integers(1, 20)),
    max_size=60,
)


def simulate_stock(operations: list[tuple[str, int]]) -> tuple[list[StockAdjustment], tuple[int, int]]:
    """What the writers emit for a run of operations on one product, and its final (on hand, reserved)."""
    on_hand = reserved = version = 0
    events = []
    for i, (op, qty) in enumerate(operations):
        if op == "RESTOCK":
            on_hand, delta = on_hand + qty, qty
        elif op == "SENSOR":
            qty = min(qty, on_hand - reserved)
            on_hand, delta = on_hand - qty, -qty
        elif op == "RESERVATION":
            qty = min(qty, on_hand - reserved)
            reserved, delta = reserved + qty, -qty
        elif op == "RELEASE":
            qty = min(qty, reserved)
            reserved, delta = reserved - qty, qty
        else:  # SHIPMENT: reserved units leave; available unchanged
            qty = min(qty, reserved)
            on_hand, reserved, delta = on_hand - qty, reserved - qty, 0
        if qty == 0:
            continue
        version += 1
        events.append(StockAdjustment("P1", delta, op, on_hand - reserved, i, on_hand, reserved, version))
    return events, (on_hand, reserved)


def fold(events: list[StockAdjustment]) -> StockSnapshot | None:
    snapshot = None
    for e in events:
        snapshot = fold_adjustment(snapshot, e) or snapshot
    return snapshot


@given(ops, st.randoms(use_true_random=False))
def test_the_snapshot_is_the_fold_of_all_adjustments_even_with_redelivered_ones(
    operations: list[tuple[str, int]], rnd: random.Random
) -> None:
    events, (on_hand, reserved) = simulate_stock(operations)
    # Debezium redelivers at least once: repeat a random run of already-seen events anywhere
    delivered = list(events)
    for _ in range(rnd.randint(0, 5)):
        if events:
            at = rnd.randint(0, len(delivered))
            delivered[at:at] = delivered[: rnd.randint(0, at)][-3:]
    snapshot = fold(delivered)
    if not events:
        assert snapshot is None
        return
    assert snapshot is not None
    assert (snapshot.on_hand, snapshot.reserved) == (on_hand, reserved)
    assert snapshot.available == on_hand - reserved == events[-1].available
    assert snapshot.version == len(events)


@given(st.lists(st.tuples(st.sampled_from(["RESTOCK", "RESERVATION", "RELEASE", "MANUAL"]), st.integers(-20, 20))))
def test_contract_1_0_adjustments_fold_their_deltas(deltas: list[tuple[str, int]]) -> None:
    events = [StockAdjustment("P1", d, r, 0, i) for i, (r, d) in enumerate(deltas) if d]
    snapshot = fold(events)
    assert (snapshot.available if snapshot else 0) == sum(e.delta for e in events)
    assert (snapshot.version if snapshot else 0) == len(events)


def test_a_shipment_without_after_state_is_refused() -> None:
    with pytest.raises(ValueError, match="after-state"):
        fold_adjustment(None, StockAdjustment("P1", 0, "SHIPMENT", 0, 0))


# ---------------------------------------------------------------- revenue windows

GRACE = 10_000
T0 = window_start(1_795_000_000_000, 86_400_000)  # midnight UTC, 2026-11-18


@st.composite
def order_histories(draw: st.DrawFn) -> list[tuple[str, int, int, int]]:
    """(kind, order, amount, event time) for a set of orders: each is paid, maybe canceled later,
    delivered in an order where no event is more than the grace period behind the newest one."""
    events = []
    for order in range(draw(st.integers(0, 25))):
        paid_at = T0 + draw(st.integers(0, 3 * 60_000))
        amount = draw(st.integers(1, 10**7))
        events.append(("paid", order, amount, paid_at))
        if draw(st.booleans()):
            events.append(("canceled", order, 0, paid_at + draw(st.integers(0, 60_000))))
    events.sort(key=lambda e: (e[3], e[0] == "canceled"))
    # shuffle within the grace period: swap neighbours whose times are close (an order's paid and
    # canceled events travel on two topics: the cancellation may be read first)
    for i in draw(st.lists(st.integers(0, max(len(events) - 2, 0)), max_size=30)):
        if i + 1 < len(events) and events[i + 1][3] - events[i][3] < GRACE // 2:
            events[i], events[i + 1] = events[i + 1], events[i]
    newest = 0
    for *_, at in events:  # repeated swaps may carry one event further back than the grace period
        assume(newest - at < GRACE)
        newest = max(newest, at)
    return events


def run_windows(events: list[tuple[str, int, int, int]], redeliver: bool = False) -> dict[tuple[str, int], tuple]:
    """Step 1 then step 2 as the dataflow runs them on one partition (the watermark is the highest
    event time read so far); the last value written per window."""
    orders: dict[int, OrderRevenue | None] = {}
    windows = RevenueWindows("USD", GRACE)
    written: dict[tuple[str, int], tuple] = {}

    def write(values: list[WindowValue]) -> None:
        for v in values:
            old = written.get((v.window, v.start))
            assert old is None or old[2] < v.version, "versions only grow"
            assert old is None or not old[3], "nothing is written after a window's final value"
            written[(v.window, v.start)] = (v.amount_minor, v.orders, v.version, v.final)

    newest = -1
    for kind, order, amount, at in events:
        newest = max(newest, at)
        for _ in range(2 if redeliver else 1):
            if kind == "paid":
                orders[order], deltas = on_order_paid(orders.get(order), str(order), amount, "USD", at)
            else:
                orders[order], deltas = on_order_canceled(orders.get(order), str(order), at)
            for delta in deltas:
                write(windows.apply(delta))
                write(windows.advance(newest))
    assert windows.late == 0
    write(windows.advance(2**62))
    assert windows.open == {}, "the last watermark closes every window"
    return written


def brute_force(events: list[tuple[str, int, int, int]]) -> dict[tuple[str, int], tuple[int, int]]:
    paid = {o: a for k, o, a, _ in events if k == "paid"}
    sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for kind, order, _, at in events:
        sign = 1 if kind == "paid" else -1
        for name, size in WINDOWS.items():
            sums[(name, window_start(at, size))][0] += sign * paid[order]
            sums[(name, window_start(at, size))][1] += sign
    return {k: (v[0], v[1]) for k, v in sums.items()}


@given(order_histories(), st.booleans())
@settings(max_examples=200, deadline=None)
def test_window_sums_equal_a_brute_force_recomputation_for_any_order_within_grace(
    events: list[tuple[str, int, int, int]], redeliver: bool
) -> None:
    written = run_windows(events, redeliver)
    assert {k: v[:2] for k, v in written.items()} == brute_force(events)
    assert all(v[3] for v in written.values()), "every window ends final"


@given(order_histories())
@settings(deadline=None)
def test_cancellations_of_paid_orders_net_out(events: list[tuple[str, int, int, int]]) -> None:
    written = run_windows(events)
    day_total = sum(v[0] for (name, _), v in written.items() if name == "1d")
    minute_total = sum(v[0] for (name, _), v in written.items() if name == "1m")
    canceled = {o for k, o, _, _ in events if k == "canceled"}
    kept = sum(a for k, o, a, _ in events if k == "paid" and o not in canceled)
    assert day_total == minute_total == kept


def test_a_late_delta_is_dropped_and_counted_and_a_closed_window_is_final_once() -> None:
    w = RevenueWindows("USD", GRACE)
    first = w.apply(RevenueDelta("USD", T0 + 1_000, 500, 1, "o1"))
    assert [(v.window, v.amount_minor, v.final) for v in first] == [("1m", 500, False), ("1d", 500, False)]
    assert w.advance(T0 + 1_000) == [], "the watermark has not passed the window's end plus grace"
    booked = w.apply(RevenueDelta("USD", T0 + 60_000 + GRACE, 100, 1, "o2"))
    assert [v.final for v in booked] == [False, False], "apply books; it closes nothing"
    finals = w.advance(T0 + 60_000 + GRACE)
    assert [(v.window, v.start, v.amount_minor, v.orders, v.final) for v in finals] == [
        ("1m", window_start(T0, 60_000), 500, 1, True)
    ]
    assert w.advance(T0 + 60_000 + GRACE) == [], "a window is final once"
    assert w.advance(T0) == [] and w.watermark == T0 + 60_000 + GRACE, "the watermark never moves back"
    late = w.apply(RevenueDelta("USD", T0 + 2_000, 700, 1, "o3"))
    assert [(v.window, v.amount_minor, v.orders) for v in late] == [("1d", 1300, 3)], "its 1m window is closed"
    assert w.late == 1
    assert [(v.window, v.amount_minor, v.final) for v in w.current() if v.start == window_start(T0, 60_000)] == [
        ("1m", 500, True),
        ("1d", 1300, False),
    ], "current(): the closed window's final value and the running ones"


def test_a_delta_within_the_grace_period_after_its_windows_end_still_counts() -> None:
    w = RevenueWindows("USD", GRACE)
    w.apply(RevenueDelta("USD", T0 + 1_000, 500, 1, "o1"))
    assert w.advance(T0 + 60_000 + GRACE - 1) == [], "past the window's end, not past its grace"
    values = w.apply(RevenueDelta("USD", T0 + 59_999, 100, 1, "o2"))
    assert [(v.window, v.amount_minor, v.orders, v.final) for v in values] == [
        ("1m", 600, 2, False),
        ("1d", 600, 2, False),
    ]
    assert w.late == 0
    finals = w.advance(T0 + 60_000 + GRACE)
    assert [(v.window, v.start, v.amount_minor, v.final) for v in finals] == [("1m", T0, 600, True)]


def test_cancel_of_an_unpaid_order_and_repeated_events_book_nothing() -> None:
    assert on_order_canceled(None, "o1", T0)[1] == []
    state, deltas = on_order_paid(None, "o1", 900, "EUR", T0)
    assert deltas == [RevenueDelta("EUR", T0, 900, 1, "o1")]
    assert on_order_paid(state, "o1", 900, "EUR", T0) == (state, [])
    state, deltas = on_order_canceled(state, "o1", T0 + 5)
    assert deltas == [RevenueDelta("EUR", T0 + 5, -900, -1, "o1")]
    assert on_order_canceled(state, "o1", T0 + 6) == (state, [])
    with pytest.raises(ValueError, match="EUR delta"):
        RevenueWindows("USD").apply(deltas[0])


def test_a_cancellation_read_before_its_payment_is_booked_when_the_payment_arrives() -> None:
    state, deltas = on_order_canceled(None, "o1", T0 + 5)
    assert deltas == []
    state, deltas = on_order_paid(state, "o1", 900, "EUR", T0)
    assert deltas == [RevenueDelta("EUR", T0, 900, 1, "o1"), RevenueDelta("EUR", T0 + 5, -900, -1, "o1")]
    assert on_order_canceled(state, "o1", T0 + 5) == (state, [])


# ---------------------------------------------------------------- flash-sale price map


def sale(i: int, price: int, start: int, end: int) -> FlashSale:
    return FlashSale(f"S{i}", "P1", price, "USD", 10_000, start, end)


sales_st = st.lists(
    st.builds(
        lambda i, p, s, d: sale(i, p, s, s + d),
        st.integers(0, 8),
        st.integers(1, 9_999),
        st.integers(0, 100),
        st.integers(1, 100),
    ),
    max_size=8,
    unique_by=lambda s: s.sale_id,
)


@given(sales_st, st.sets(st.integers(0, 8)), st.randoms(use_true_random=False))
def test_the_price_map_merge_is_independent_of_event_order(
    sales: list[FlashSale], ended: set[int], rnd: random.Random
) -> None:
    events = [("start", s, s.starts_at) for s in sales]
    events += [("end", s, s.starts_at + 1) for s in sales if int(s.sale_id[1:]) in ended]

    def merged(order: list) -> PriceMap:
        m = PriceMap("P1")
        for kind, s, at in order:
            if kind == "start":
                m.started(s, at)
            else:
                m.ended_sale(s.sale_id, s.ends_at, at)
        return m

    shuffled = list(events)
    rnd.shuffle(shuffled)
    a, b = merged(events), merged(shuffled)
    assert a.sales == b.sales
    assert a.to_cache() == b.to_cache()
    assert all(int(s[1:]) not in ended for s in a.sales)


def test_the_running_sale_with_the_lowest_price_wins_and_over_sales_are_pruned() -> None:
    m = PriceMap("P1")
    assert m.started(sale(1, 800, 0, 100), 0)
    assert m.started(sale(2, 700, 50, 150), 10)
    assert not m.started(sale(1, 800, 0, 100), 11), "a duplicate changes nothing"
    cache = m.to_cache()
    assert price_at(cache, 20)["saleId"] == "S1"
    assert price_at(cache, 60)["saleId"] == "S2"
    assert price_at(cache, 150) is None
    assert m.expires_at() == 150
    assert m.ended_sale("S2", 150, 70)
    assert price_at(m.to_cache(), 80)["saleId"] == "S1"
    assert not m.started(sale(2, 700, 50, 150), 71), "an ended sale does not come back"
    m.started(sale(3, 900, 100, 300), 120)
    assert [s["saleId"] for s in m.to_cache()] == ["S3"], "S1 ended at 100"


def envelope_of(event: EventType, key: str, at: int) -> Envelope:
    return Envelope(f"id-{key}-{at}", event.name, at, "order-service", "0" * 32, "c-1", event.schema_version, key)


def test_a_payment_redelivered_after_fulfilment_books_nothing_and_one_read_after_it_books() -> None:
    paid = OrderPaid(
        envelope_of(event_type("ecommerce.order.order.paid.v1"), "o1", T0),
        "o1",
        "u1",
        "pay-1",
        Money(500, "USD"),
        T0,
    )
    fulfilled = OrderFulfilled(
        envelope_of(event_type("ecommerce.order.order.fulfilled.v1"), "o1", T0 + 9), "o1", "u1", T0 + 9, None
    )
    state, deltas = revenue_delta(None, paid)
    assert deltas == [RevenueDelta("USD", T0, 500, 1, "o1")]
    state, deltas = revenue_delta(state, fulfilled)
    assert deltas == [] and state.fulfilled
    assert revenue_delta(state, paid)[1] == [], "Debezium redelivered the payment"
    state, _ = revenue_delta(None, fulfilled)  # read before its payment (another topic)
    assert [d.amount_minor for d in revenue_delta(state, paid)[1]] == [500]


def test_revenue_delta_books_typed_cancellations_at_their_event_time() -> None:
    paid = OrderPaid(
        envelope_of(event_type("ecommerce.order.order.paid.v1"), "o1", T0),
        "o1",
        "u1",
        "pay-1",
        Money(900, "EUR"),
        T0,
    )
    canceled = OrderCanceled(
        envelope_of(event_type("ecommerce.order.order.canceled.v1"), "o1", T0 + 70_000), "o1", "u1", "refund", "u1", ()
    )
    state, deltas = revenue_delta(None, canceled)  # read first: kept until the payment shows up
    assert deltas == []
    state, deltas = revenue_delta(state, paid)
    assert deltas == [RevenueDelta("EUR", T0, 900, 1, "o1"), RevenueDelta("EUR", T0 + 70_000, -900, -1, "o1")]
    assert revenue_delta(state, canceled) == (state, []), "a redelivered cancellation"


def test_revenue_delta_refuses_an_event_it_does_not_read() -> None:
    started = FlashSaleStarted(
        envelope_of(event_type("ecommerce.pricing.flash_sale.started.v1"), "P1", T0),
        "S1",
        "P1",
        Money(800, "USD"),
        Money(1000, "USD"),
        T0,
        T0 + 60_000,
    )
    with pytest.raises(ValueError, match="do not read ecommerce.pricing.flash_sale.started.v1"):
        revenue_delta(None, started)  # type: ignore[arg-type]


def test_a_flash_sale_is_made_from_its_typed_started_event() -> None:
    started = FlashSaleStarted(
        envelope_of(event_type("ecommerce.pricing.flash_sale.started.v1"), "P1", T0),
        "S1",
        "P1",
        Money(800, "USD"),
        Money(1000, "USD"),
        T0 + 5,
        T0 + 60_000,
    )
    assert FlashSale.of(started) == FlashSale("S1", "P1", 800, "USD", 1000, T0 + 5, T0 + 60_000)
