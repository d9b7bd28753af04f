"""streams.core, the projections kernel: the watermark per partition, where to resume, what a sink
applies of a batch, the stage runner's rules, the ids of derived records, a batch in memory."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream.domain import event_type
from shopstream.domain.events import EventType
from shopstream.domain.money import Money
from shopstream.domain.revenue import WINDOWS, window_start
from shopstream.domain.typed_events import Envelope, OrderCanceled, OrderFulfilled, OrderPaid
from streams import revenue_windows
from streams.core import (
    NEVER,
    RECORD_IDS,
    Emit,
    Invalidate,
    Item,
    KeyState,
    PartitionClock,
    Position,
    Rank,
    Refresh,
    StageRunner,
    Stepped,
    Tick,
    Upsert,
    Write,
    coalesce,
    parse_partition_name,
    partition_name,
    resume_from,
    run_batch,
)
from streams.settings import RevenueWindowsSettings

T0 = window_start(1_795_000_000_000, 86_400_000)  # midnight UTC
P0, P1 = partition_name("ecommerce.order.order.paid.v1", 0), partition_name("ecommerce.order.order.paid.v1", 1)
PAID = event_type("ecommerce.order.order.paid.v1")
CANCELED = event_type("ecommerce.order.order.canceled.v1")
FULFILLED = event_type("ecommerce.order.order.fulfilled.v1")


def envelope_of(event: EventType, key: str, at: int, n: int) -> Envelope:
    return Envelope(str(uuid.UUID(int=n)), event.name, at, "test", f"{n:032x}", f"corr-{n}", event.schema_version, key)


# --- PartitionClock -----------------------------------------------------------------------------------


def test_partition_names_round_trip() -> None:
    assert P0 == "ecommerce.order.order.paid.v1[0]"
    assert parse_partition_name(partition_name("a.b[x]", 12)) == ("a.b[x]", 12)


def test_a_backlog_on_one_partition_does_not_push_the_watermark_past_another_partitions_progress() -> None:
    clock = PartitionClock()
    clock.assign([P0, P1])
    clock.observe(P1, T0 + 1_000)
    for at in range(T0 + 300_000, T0 + 600_000, 10_000):  # partition 0's backlog, read first
        clock.observe(P0, at)
        assert clock.watermark() == T0 + 1_000
    clock.observe(P1, T0 + 2_000)
    assert clock.watermark() == T0 + 2_000, "the partition behind moves it"


def test_a_partition_not_seen_yet_holds_the_watermark_until_it_is_caught_up() -> None:
    clock = PartitionClock()
    clock.assign([P0, P1])
    clock.observe(P0, T0 + 500_000)
    assert clock.watermark() == NEVER, "partition 1 may hold anything"
    assert clock.watermark(caught_up={P0}) == NEVER, "the partition read to its end is not the one holding it"
    assert clock.watermark(caught_up={P1}) == T0 + 500_000, "partition 1 has nothing to read"


def test_caught_up_partitions_do_not_hold_it_and_when_all_are_it_is_the_highest_seen() -> None:
    clock = PartitionClock()
    clock.assign([P0, P1, "other[0]"])
    clock.observe(P0, T0 + 9_000)
    clock.observe(P1, T0 + 4_000)
    clock.observe("other[0]", T0 + 1_000)
    assert clock.watermark() == T0 + 1_000
    assert clock.watermark(caught_up={"other[0]"}) == T0 + 4_000
    assert clock.watermark(caught_up={"other[0]", P1}) == T0 + 9_000
    assert clock.watermark(caught_up={"other[0]", P1, P0}) == T0 + 9_000, "all caught up: the highest seen"


def test_the_watermark_never_moves_back() -> None:
    clock = PartitionClock()
    clock.assign([P0, P1])
    clock.observe(P0, T0 + 9_000)
    clock.observe(P1, T0 + 4_000)
    assert clock.watermark(caught_up={P1}) == T0 + 9_000
    assert clock.watermark() == T0 + 9_000, "partition 1 behind again (new records): the watermark stays"
    clock.assign(["ecommerce.order.order.paid.v1[2]"])  # a rebalance gives a partition not seen yet
    assert clock.watermark() == T0 + 9_000
    clock.observe(P1, T0)  # an older event than partition 1 had: its highest stays
    assert clock.highest[P1] == T0 + 4_000


def test_a_revoked_partition_holds_nothing_and_no_partitions_is_no_watermark() -> None:
    clock = PartitionClock()
    assert clock.watermark() == NEVER
    clock.assign([P0, P1])
    clock.observe(P0, T0 + 9_000)
    clock.revoke([P1])
    assert clock.watermark() == T0 + 9_000


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 100_000), st.frozensets(st.integers(0, 2))),
        max_size=40,
    )
)
def test_the_watermark_is_monotone_and_never_ahead_of_every_partition(
    steps: list[tuple[int, int, frozenset[int]]],
) -> None:
    clock = PartitionClock()
    names = [partition_name("t", p) for p in range(3)]
    clock.assign(names)
    previous = NEVER
    for p, at, caught_up in steps:
        clock.observe(names[p], at)
        done = {names[c] for c in caught_up}
        watermark = clock.watermark(done)
        assert watermark >= previous
        behind = [clock.highest[n] for n in names if n not in done]
        if watermark > previous:  # it moved: to the slowest partition behind, or all are caught up
            assert watermark == (min(behind) if behind else max(clock.highest.values()))
        assert watermark <= max(clock.highest.values())
        previous = watermark


# --- the defect the per-partition watermark is for ------------------------------------------------------


def paid(order: str, amount: int, at: int, n: int) -> OrderPaid:
    return OrderPaid(envelope_of(PAID, order, at, n), order, "U-1", f"pay-{n}", Money(amount, "USD"), at)


def revenue_projection() -> Any:
    return revenue_windows.projection(RevenueWindowsSettings(grace_ms=10_000))


def backlog_then_on_time() -> tuple[list[tuple[str, OrderPaid]], dict[tuple[str, int], tuple[int, int]]]:
    """Partition 0's backlog (minutes 5 to 8) is read before partition 1's on-time payments
    (minute 0): (partition, event) in read order, and the brute-force window sums."""
    backlog = [(P0, paid(f"B-{i}", 100 + i, T0 + 300_000 + i * 20_000, i)) for i in range(10)]
    on_time = [(P1, paid(f"N-{i}", 1_000 + i, T0 + i * 5_000, 100 + i)) for i in range(12)]
    sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for _, event in backlog + on_time:
        for name, size in WINDOWS.items():
            sums[(name, window_start(event.paid_at, size))][0] += event.amount.amount_minor
            sums[(name, window_start(event.paid_at, size))][1] += 1
    return backlog + on_time, {k: (v[0], v[1]) for k, v in sums.items()}


def items_with(read: list[tuple[str, OrderPaid]], watermarks: list[int]) -> list[Item[Any]]:
    offsets: dict[str, int] = defaultdict(int)
    out: list[Item[Any]] = []
    for (partition, event), watermark in zip(read, watermarks, strict=True):
        at = Position(partition, offsets[partition])
        offsets[partition] += 1
        out.append(Item(event.order_id, event, at, event.paid_at, watermark, event.envelope.trace_id, "c"))
    return out


def windows_of(items: list[Item[Any]], batch: int) -> tuple[dict[tuple[str, int], tuple[int, int]], int]:
    projection = revenue_projection()
    runners = [StageRunner(s) for s in projection.stages]
    states: list[dict[str, KeyState[Any]]] = [{}, {}]
    for start in range(0, len(items), batch):
        run_batch(projection, runners, states, items[start : start + batch])
    usd = states[1]["USD"].state
    held = {**usd.open, **usd.closed}
    return {(k.split(":")[0], int(k.split(":")[1])): (v[0], v[1]) for k, v in held.items()}, usd.late


@pytest.mark.parametrize("batch", [1, 3, 100])
def test_a_backlog_read_first_makes_no_on_time_event_late_with_the_partition_clock(batch: int) -> None:
    read, expected = backlog_then_on_time()
    clock = PartitionClock()
    clock.assign([P0, P1])
    remaining = {P0: sum(p == P0 for p, _ in read), P1: sum(p == P1 for p, _ in read)}
    watermarks = []
    for partition, event in read:
        clock.observe(partition, event.paid_at)
        remaining[partition] -= 1
        watermarks.append(clock.watermark({p for p, n in remaining.items() if n == 0}))
    assert watermarks[9] == NEVER, "partition 1, not read yet, held it through the backlog"
    assert watermarks[-1] == T0 + 300_000 + 9 * 20_000, "all read: the highest event time"
    windows, late = windows_of(items_with(read, watermarks), batch)
    assert late == 0
    assert windows == expected


def test_a_watermark_of_the_highest_event_time_read_would_drop_the_on_time_events() -> None:
    """The same history with the watermark one clock over the whole input gives: what the test
    above guards against."""
    read, expected = backlog_then_on_time()
    highest, watermarks = NEVER, []
    for _, event in read:
        highest = max(highest, event.paid_at)
        watermarks.append(highest)
    windows, late = windows_of(items_with(read, watermarks), 100)
    assert late == 12, "every on-time payment's 1-minute window had closed"
    assert windows != expected


@pytest.mark.parametrize("batch", [1, 3])
def test_the_payment_that_releases_the_watermark_books_its_orders_earlier_cancellation_too(batch: int) -> None:
    """Read as Quix reads it (a batch of one; each item stamped with the clock's watermark once it
    has seen the item): order A's cancellation, a payment a day later on another partition, then
    A's payment, the last record of the partition that held the watermark back. That payment makes
    two deltas, its own and the cancellation's, and its watermark closes their windows: both must
    be booked before the windows close on it, not the payment booked, its windows closed and the
    cancellation then dropped as late."""
    canceled_partition = partition_name(CANCELED.topic, 0)
    cancel = OrderCanceled(envelope_of(CANCELED, "A", T0 + 30_000, 1), "A", "U-1", "refund", "ADM-1", ())
    later = paid("Z", 7, T0 + 86_400_000 + 60_000, 2)
    read = [
        (canceled_partition, cancel, T0 + 30_000),
        (P1, later, later.paid_at),
        (P0, paid("A", 500, T0 + 10_000, 3), T0 + 10_000),
    ]
    clock = PartitionClock()
    clock.assign([canceled_partition, P0, P1])
    items: list[Item[Any]] = []
    for n, (partition, event, at) in enumerate(read):
        clock.observe(partition, at)
        watermark = clock.watermark({p for p, _, _ in read[: n + 1]})  # one record each: read to its end
        items.append(Item(event.order_id, event, Position(partition, 0), at, watermark, f"t{n}", "c"))
    assert [i.watermark for i in items] == [NEVER, NEVER, later.paid_at], "partition 0 held it until A's payment"
    projection = revenue_projection()
    runners = [StageRunner(s) for s in projection.stages]
    states: list[dict[str, KeyState[Any]]] = [{}, {}]
    writes: list[Write] = []
    for start in range(0, len(items), batch):
        writes += run_batch(projection, runners, states, items[start : start + batch])
    assert states[1]["USD"].state.late == 0
    stored = {
        w.key: (w.fields["amountMinor"], w.fields["orders"], w.fields["final"])
        for w in coalesce(writes)
        if type(w) is Upsert
    }
    assert stored == {
        f"revenue:1m:USD:{T0}": ("0", "0", "1"),  # A paid and canceled, final
        f"revenue:1d:USD:{T0}": ("0", "0", "1"),
        f"revenue:1m:USD:{T0 + 86_460_000}": ("7", "1", "0"),
        f"revenue:1d:USD:{T0 + 86_400_000}": ("7", "1", "0"),
    }


@pytest.mark.parametrize("forward_watermarks", [True, False])
def test_an_input_that_books_nothing_forwards_its_watermark_where_the_engine_asks_for_it(
    forward_watermarks: bool,
) -> None:
    """Quix has no timers: the windows learn of the watermark from items only. When the record
    that moves it is one that books nothing (A's fulfilment, read last), its watermark still
    reaches A's currency and the window turns final; without `forward_watermarks` (Bytewax, whose
    timers do it) nothing is forwarded."""
    projection = revenue_projection()
    runners = [StageRunner(s, forward_watermarks=forward_watermarks) for s in projection.stages]
    states: list[dict[str, KeyState[Any]]] = [{}, {}]
    fulfilled = OrderFulfilled(envelope_of(FULFILLED, "A", T0 + 600_000, 2), "A", "U-1", T0 + 600_000, None)
    fulfilled_at = Position(partition_name(FULFILLED.topic, 0), 0)
    read = [
        Item("A", paid("A", 500, T0 + 2_000, 1), Position(P0, 0), T0 + 2_000, NEVER, "t1", "c"),
        Item("A", fulfilled, fulfilled_at, T0 + 600_000, T0 + 600_000, "t2", "c"),
    ]
    writes = [w for item in read for w in run_batch(projection, runners, states, [item])]
    final = {w.key: w.fields["final"] for w in coalesce(writes) if type(w) is Upsert}
    assert final == {f"revenue:1m:USD:{T0}": "1" if forward_watermarks else "0", f"revenue:1d:USD:{T0}": "0"}
    ticked = runners[0].run(
        "A", states[0]["A"], [Item("A", fulfilled, Position(fulfilled_at.partition, 1), T0, T0, "t", "c")]
    )
    assert [type(i.value) for i in ticked[1]] == ([Tick] if forward_watermarks else [])


# --- resume_from ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine_next", "store", "expected"),
    [
        (120, {}, 0),  # the store holds nothing (new, or wiped): everything again
        (0, {}, None),  # and the engine has nothing of it either
        (120, {"t[1]": 50}, None),  # the store never recorded this partition: nothing of it to lose
        (120, {"t[0]": 80, "t[1]": 50}, 80),  # the store is behind: from its position
        (120, {"t[0]": 120}, None),  # level with the engine
        (120, {"t[0]": 150}, None),  # ahead (the engine's commit was lost): the engine's own
        (None, {"t[0]": 80}, None),  # the engine starts from the beginning anyway
        (None, {}, None),
    ],
)
def test_resume_from(engine_next: int | None, store: dict[str, int], expected: int | None) -> None:
    assert resume_from("t[0]", engine_next, store) == expected


# --- coalesce ------------------------------------------------------------------------------------------


def test_coalesce_keeps_the_newest_version_per_slot_and_the_later_of_a_tie() -> None:
    a1 = Upsert("inventory:P1", 1, {"onHand": "1"})
    a3 = Upsert("inventory:P1", 3, {"onHand": "3"})
    a2 = Upsert("inventory:P1", 2, {"onHand": "2"})
    b_first = Rank("top", "P1", 10, 5)
    b_again = Rank("top", "P1", 11, 5)  # the same version again: the later wins
    other_member = Rank("top", "P2", 1, 1)
    floor_new, floor_old = (
        Invalidate("product:P1:floor", 7, ("product:P1",), 1),
        Invalidate("product:P1:floor", 6, ("product:P1",), 1),
    )
    out = coalesce([a1, a3, b_first, a2, other_member, b_again, floor_new, floor_old])
    assert out == [a3, b_again, other_member, floor_new]
    assert coalesce([]) == []


def test_every_write_kind_has_its_own_slot() -> None:
    assert Upsert("k", 1, {}).slot == "k"
    assert Invalidate("k:floor", 1, (), 1).slot == "k:floor"
    assert Rank("top", "P1", 1, 1).slot == "top P1"
    emit = Emit(revenue_windows.WINDOW, 1, {"windowId": "USD:1m:x"}, 0, "t", "c", "p")
    assert emit.slot == f"{revenue_windows.WINDOW.topic} USD:1m:x"


# --- Emit.record ---------------------------------------------------------------------------------------


def test_a_derived_records_id_is_stable_for_topic_key_and_version() -> None:
    event = event_type("ecommerce.inventory.stock_snapshot.updated.v1")
    payload = {"productId": "P1", "onHand": 3, "reserved": 1, "available": 2, "version": 7, "updatedAt": T0}
    first = Emit(event, 7, payload, T0, "trace-a", "corr-a", "inventory_snapshot").record()
    replayed = Emit(event, 7, {**payload, "onHand": 4}, T0 + 5, "", "", "inventory_snapshot").record()
    newer = Emit(event, 8, payload, T0, "trace-a", "corr-a", "inventory_snapshot").record()
    other = Emit(event, 7, {**payload, "productId": "P2"}, T0, "trace-a", "corr-a", "inventory_snapshot").record()
    assert first["eventId"] == str(uuid.uuid5(RECORD_IDS, f"{event.topic}:P1:7"))
    assert replayed["eventId"] == first["eventId"], "a replay reproduces the id"
    assert len({first["eventId"], newer["eventId"], other["eventId"]}) == 3
    assert first == {
        "eventId": first["eventId"],
        "eventType": event.name,
        "occurredAt": T0,
        "producer": "inventory_snapshot",
        "traceId": "trace-a",
        "correlationId": "corr-a",
        "schemaVersion": event.schema_version,
        "partitionKey": "P1",
        "payload": payload,
    }


# --- StageRunner ---------------------------------------------------------------------------------------


class Counter:
    """A stage counting its items; writes (or forwards) one per step."""

    name = "counter"

    def __init__(self, forwards: bool, writes: bool = True) -> None:
        self.forwards = forwards
        self.writes = writes
        self.steps: list[list[Position]] = []

    def step(self, key: str, state: int | None, items: Sequence[Item[Any]]) -> Stepped[int]:
        self.steps.append([i.at for i in items])
        total = (state or 0) + len(items)
        writes: list[Write] = [Upsert(key, total, {"n": str(total)})] if self.writes else []
        forward = [items[-1].forward("next", total, 0)] if self.forwards or not self.writes else []
        return Stepped(total, writes, forward)

    def current(self, key: str, state: int) -> list[Write]:
        return [Upsert(key, state, {"n": str(state)})]

    def downstream(self, key: str, state: int) -> list[str]:
        return ["next", "other"] if self.forwards else []

    def dump(self, state: int) -> Any:
        return state

    def load(self, data: Any) -> int:
        return int(data)


def item(offset: int, partition: str = "t[0]", sub: int = 0, value: Any = None) -> Item[Any]:
    return Item("k", value, Position(partition, offset, sub), T0 + offset, NEVER, "trace", "corr")


def test_a_stage_must_either_write_or_forward() -> None:
    with pytest.raises(RuntimeError, match="must either write or forward"):
        StageRunner(Counter(forwards=True)).run("k", KeyState(), [item(0)])
    with pytest.raises(RuntimeError, match="must either write or forward"):
        StageRunner(Counter(forwards=False, writes=False)).run("k", KeyState(), [item(0)])


def test_items_at_or_below_a_keys_applied_position_are_replays_counted_and_rewrite_the_current_value() -> None:
    stage = Counter(forwards=False)
    runner = StageRunner(stage)
    ks: KeyState[int] = KeyState()
    writes, forward = runner.run("k", ks, [item(0), item(1), item(0, "t[1]")])
    assert (ks.state, ks.applied) == (3, {"t[0]": (1, 0), "t[1]": (0, 0)})
    assert (writes, forward) == ([Upsert("k", 3, {"n": "3"})], [])
    assert runner.replayed == 0
    writes, _ = runner.run("k", ks, [item(1), item(0, "t[1]"), item(0)])
    assert (ks.state, writes, runner.replayed) == (3, [Upsert("k", 3, {"n": "3"})], 3), "nothing stepped"
    assert len(stage.steps) == 1
    writes, _ = runner.run("k", ks, [item(1), item(1, sub=1), item(2), item(1, sub=2)])
    assert stage.steps[-1] == [Position("t[0]", 1, 1), Position("t[0]", 2)], "a later sub-position is new"
    assert ks.state == 5 and ks.applied["t[0]"] == (2, 0)
    assert writes == [Upsert("k", 5, {"n": "5"}), Upsert("k", 5, {"n": "5"})], "the step's writes, then current"
    assert runner.replayed == 5, "(1, 0) again, and (1, 2) read after (2, 0)"


def test_a_replayed_key_without_state_rewrites_nothing() -> None:
    runner = StageRunner(Counter(forwards=False))
    ks: KeyState[int] = KeyState(None, {"t[0]": (5, 0)})
    assert runner.run("k", ks, [item(3)]) == ([], [])
    assert runner.replayed == 1


def test_a_forwarding_stage_forwards_its_items_with_positions_under_its_inputs() -> None:
    runner = StageRunner(Counter(forwards=True, writes=False))
    writes, forward = runner.run("k", KeyState(), [item(4, sub=1)])
    assert writes == []
    assert [(f.key, f.value, f.at) for f in forward] == [("next", 1, Position("t[0]", 4, 16))]


def test_a_forwarding_stage_that_sees_a_replay_refreshes_its_downstream_keys() -> None:
    runner = StageRunner(Counter(forwards=True, writes=False))
    ks: KeyState[int] = KeyState()
    runner.run("k", ks, [item(4)])
    writes, forward = runner.run("k", ks, [item(3), item(4)])
    assert writes == [] and runner.replayed == 2
    assert [(f.key, type(f.value), f.at) for f in forward] == [
        ("next", Refresh, Position("t[0]", 4, 15)),
        ("other", Refresh, Position("t[0]", 4, 15)),
    ], "one refresh per downstream key, at the last replayed position"
    writes, forward = runner.run("k", ks, [item(4), item(5)])
    assert [type(f.value) for f in forward] == [int, Refresh, Refresh], "what it stepped, then the refreshes"


def test_a_refresh_rewrites_the_keys_current_value_stepping_nothing() -> None:
    stage = Counter(forwards=False)
    runner = StageRunner(stage)
    ks: KeyState[int] = KeyState()
    assert runner.run("next", ks, [item(0, value=Refresh())]) == ([], []), "no state: nothing to rewrite"
    runner.run("next", ks, [item(1)])
    writes, _ = runner.run("next", ks, [item(1, value=Refresh())])
    assert writes == [Upsert("next", 1, {"n": "1"})]
    assert len(stage.steps) == 1 and runner.replayed == 0, "a refresh is not an item: not stepped, not counted"
    assert ks.applied == {"t[0]": (1, 0)}


def test_a_runner_without_dedupe_steps_every_item_it_is_given() -> None:
    """For the later stages of an engine that reorders items between stages (Bytewax)."""
    stage = Counter(forwards=False)
    runner = StageRunner(stage, dedupe=False)
    ks: KeyState[int] = KeyState()
    runner.run("k", ks, [item(5)])
    writes, _ = runner.run("k", ks, [item(3), item(5)])
    assert ks.state == 3 and writes == [Upsert("k", 3, {"n": "3"})] and runner.replayed == 0
    assert ks.applied == {}, "no positions kept"


def test_a_bare_watermark_turns_windows_final_and_stages_without_ticks_do_nothing_on_it() -> None:
    projection = revenue_projection()
    runners = [StageRunner(s) for s in projection.stages]
    states: list[dict[str, KeyState[Any]]] = [{}, {}]
    one = Item("A", paid("A", 500, T0 + 2_000, 3), Position(P0, 0), T0 + 2_000, T0 + 2_000, "t3", "c3")
    run_batch(projection, runners, states, [one])
    order, windows = runners
    assert (order.stage.ticks, windows.stage.ticks) == (False, True)
    assert order.advance("A", states[0]["A"], T0 + 10**9) == [], "the order stage has nothing to close"
    assert windows.advance("EUR", KeyState(), T0 + 10**9) == [], "a key without state"
    assert windows.advance("USD", states[1]["USD"], T0 + 60_000 + 9_999) == [], "within the grace period"
    finals = windows.advance("USD", states[1]["USD"], T0 + 70_000)
    assert [(w.key, w.fields["final"], w.fields["amountMinor"]) for w in finals if isinstance(w, Upsert)] == [
        (f"revenue:1m:USD:{T0}", "1", "500")
    ]
    assert windows.advance("USD", states[1]["USD"], T0 + 70_000) == [], "final once"


def test_key_state_dumps_and_loads() -> None:
    stage = Counter(forwards=False)
    ks: KeyState[int] = KeyState(7, {"t[0]": (9, 2)})
    data = ks.dump(stage)
    assert data == {"s": 7, "a": {"t[0]": (9, 2)}}
    loaded = KeyState.load(stage, {"s": 7, "a": {"t[0]": [9, 2]}})  # as JSON gives it back
    assert (loaded.state, loaded.applied) == (7, {"t[0]": (9, 2)})
    assert KeyState.load(stage, {"s": None, "a": {}}).state is None


# --- run_batch -----------------------------------------------------------------------------------------


def test_forwarded_items_reach_the_next_stage_in_the_order_their_inputs_were_read() -> None:
    """An order's cancellation read before its payment, another order paid in between: the payment
    of order A books both of A's deltas at A's payment position, after B's. Grouped key by key, the
    windows stage would see B's (lower) position after A's and skip it as a replay."""
    projection = revenue_projection()
    canceled = OrderCanceled(envelope_of(CANCELED, "A", T0 + 30_000, 1), "A", "U-1", "refund", "ADM-1", ())
    read = [
        Item("A", canceled, Position(partition_name(CANCELED.topic, 0), 0), T0 + 30_000, NEVER, "t1", "c"),
        Item("B", paid("B", 200, T0 + 1_000, 2), Position(P0, 0), T0 + 1_000, NEVER, "t2", "c"),
        Item("A", paid("A", 500, T0 + 2_000, 3), Position(P0, 1), T0 + 2_000, NEVER, "t3", "c"),
    ]
    runners = [StageRunner(s) for s in projection.stages]
    states: list[dict[str, KeyState[Any]]] = [{}, {}]
    run_batch(projection, runners, states, read)
    usd = states[1]["USD"].state
    assert usd.open == {f"1m:{T0}": [200, 1, 3], f"1d:{T0}": [200, 1, 3]}, "B's payment, A's paid and refunded"
    assert [r.replayed for r in runners] == [0, 0]
    assert states[1]["USD"].applied == {P0: (1, 1)}


def test_a_batch_routes_inputs_to_their_stage_and_returns_every_write() -> None:
    projection = revenue_projection()
    runners = [StageRunner(s) for s in projection.stages]
    states: list[dict[str, KeyState[Any]]] = [{}, {}]
    one = Item("A", paid("A", 500, T0 + 2_000, 3), Position(P0, 0), T0 + 2_000, T0 + 2_000, "t3", "c3")
    writes = run_batch(projection, runners, states, [one])
    assert set(states[0]) == {"A"} and set(states[1]) == {"USD"}
    assert [type(w).__name__ for w in writes] == ["Upsert", "Rank", "Emit"] * 2
    assert {w.trace_id for w in writes if isinstance(w, Emit)} == {"t3"}
    assert run_batch(projection, runners, states, []) == []
