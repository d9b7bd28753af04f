"""The four projections through the kernel, without a broker: generated event histories, read from
their topics' partitions as a consumer would (each partition in order, the partitions interleaved
by when their records arrive; the watermark per item from a `PartitionClock`), run through
`streams.core.run_batch` with fresh `StageRunner`s and states. The laws:

(a) how the items are cut into batches (and whether the state is restored from its dump between
    them) changes neither the final state nor the last write per slot;
(b) Debezium's redeliveries (the same event again at a new offset) change nothing;
(c) replaying applied items (the same positions again) changes no state and writes each replayed
    key's current value, never anything newer than what the run wrote;
(d) the result equals a brute-force recomputation from the history where that is simple."""

from __future__ import annotations

import dataclasses
import json
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream.domain import event_type
from shopstream.domain.events import EventType
from shopstream.domain.inventory import RESERVED_REASONS, is_low, units_ordered
from shopstream.domain.money import Money
from shopstream.domain.orders import STATUS_RANK, is_final
from shopstream.domain.revenue import WINDOWS, window_start
from shopstream.domain.typed_events import (
    Envelope,
    FlashSaleEnded,
    FlashSaleStarted,
    OrderCanceled,
    OrderCreated,
    OrderFulfilled,
    OrderItem,
    OrderPaid,
    ProductUpdated,
    ReleasedItem,
    StockAdjusted,
    StockSnapshotUpdated,
)
from streams import flash_sale_price_map, inventory_snapshot, product_search_index, revenue_windows, serving_caches
from streams.core import (
    NEVER,
    Document,
    Emit,
    Invalidate,
    Item,
    KeyState,
    PartitionClock,
    Position,
    Projection,
    Rank,
    StageRunner,
    Upsert,
    Write,
    coalesce,
    partition_name,
    run_batch,
)
from streams.settings import (
    FlashSalePriceMapSettings,
    InventorySnapshotSettings,
    ProductSearchIndexSettings,
    RevenueWindowsSettings,
    ServingCachesSettings,
)

T0 = window_start(1_795_000_000_000, 86_400_000)  # midnight UTC
PARTITIONS = 2  # of every input topic
GAP = 1_000  # offsets of a generated log are this far apart: room for the redelivered copies
GRACE = 10_000
LATE = 180_000  # ms a record may take to be read in the general histories: beyond the grace period
PROPERTY = settings(max_examples=30, deadline=None)
BRUTE = settings(max_examples=50, deadline=None)

History = list[tuple[Any, int]]  # (typed event, how long it takes to be read, ms), as produced


def envelope_of(event: EventType, key: str, at: int, n: int) -> Envelope:
    return Envelope(str(uuid.UUID(int=n)), event.name, at, "test", f"{n:032x}", f"corr-{n}", event.schema_version, key)


# --- reading a history as a consumer does ----------------------------------------------------------


def partition_of(event: Any) -> str:
    env: Envelope = event.envelope
    return partition_name(env.event_type, zlib.crc32(env.partition_key.encode()) % PARTITIONS)


def deliver(projection: Projection, history: History) -> list[Item[Any]]:
    """The items a consumer of the projection's inputs reads: each partition in the order its
    records were produced (by event time), the partitions interleaved by arrival (a record is read
    once it and everything before it in its partition arrived). The watermark of each item is the
    `PartitionClock`'s just after it was read, when the partitions caught up are those whose next
    record has not arrived yet (or that have none left)."""
    names = {e.name for e in projection.inputs}
    queues: dict[str, list[tuple[Any, int]]] = defaultdict(list)
    for event, delay in history:
        if event.envelope.event_type in names:
            queues[partition_of(event)].append((event, delay))
    partitions = [partition_name(e.topic, p) for e in projection.inputs for p in range(PARTITIONS)]
    arrivals: dict[str, list[int]] = {p: [] for p in partitions}
    reads: list[tuple[int, str, int, Any]] = []
    for partition, queue in queues.items():
        queue.sort(key=lambda q: q[0].envelope.occurred_at)  # stable: same-time records as produced
        arrived = NEVER
        for k, (event, delay) in enumerate(queue):
            arrived = max(arrived, event.envelope.occurred_at + delay)
            arrivals[partition].append(arrived)
            reads.append((arrived, partition, k, event))
    reads.sort(key=lambda a: (a[0], a[1], a[2]))
    clock = PartitionClock()
    clock.assign(partitions)
    unread = {p: 0 for p in partitions}  # index of the partition's next record
    items: list[Item[Any]] = []
    for now, partition, k, event in reads:
        env = event.envelope
        clock.observe(partition, env.occurred_at)
        unread[partition] = k + 1
        caught_up = {p for p, n in unread.items() if n == len(arrivals[p]) or arrivals[p][n] > now}
        at = Position(partition, k * GAP)
        watermark = clock.watermark(caught_up)
        items.append(Item(env.partition_key, event, at, env.occurred_at, watermark, env.trace_id, env.correlation_id))
    return items


def redelivered(items: Sequence[Item[Any]], copies: Iterable[tuple[int, int]]) -> list[Item[Any]]:
    """Debezium's at-least-once delivery: copies of items already read, read again later (right
    after the original, or further on) at new offsets of their partition."""
    after: dict[int, list[int]] = defaultdict(list)
    for a, b in copies:
        if items:
            source, at = sorted((a % len(items), b % len(items)))
            after[at].append(source)
    out: list[Item[Any]] = []
    last: dict[str, int] = {}
    for i, item in enumerate(items):
        out.append(item)
        last[item.at.partition] = item.at.offset
        for source in after[i]:
            copy = items[source]
            offset = last[copy.at.partition] = last[copy.at.partition] + 1
            at = Position(copy.at.partition, offset)
            out.append(msgspec.structs.replace(copy, at=at, watermark=out[-1].watermark))
    return out


def batches(items: Sequence[Item[Any]], cuts: Iterable[int]) -> list[list[Item[Any]]]:
    points = sorted({c % (len(items) + 1) for c in cuts} | {0, len(items)})
    return [list(items[a:b]) for a, b in zip(points, points[1:], strict=False) if b > a]


cuts_st = st.lists(st.integers(0, 10**6), max_size=8)
copies_st = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=10)


class Run:
    """A projection's kernel in memory: its runners, its states, and every write so far."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.runners: list[StageRunner[Any, Any]] = [StageRunner(s) for s in projection.stages]
        self.states: list[dict[str, KeyState[Any]]] = [{} for _ in projection.stages]
        self.writes: list[Write] = []

    def feed(self, *batches: Sequence[Item[Any]]) -> list[Write]:
        out: list[Write] = []
        for batch in batches:
            out += run_batch(self.projection, self.runners, self.states, batch)
        self.writes += out
        return out

    def restart(self) -> None:
        """The states restored from their dumps (JSON), as after an engine's restart."""
        self.states = [
            {k: KeyState.load(stage, json.loads(json.dumps(ks.dump(stage)))) for k, ks in states.items()}
            for stage, states in zip(self.projection.stages, self.states, strict=True)
        ]

    def dumped(self) -> list[dict[str, Any]]:
        """Every key's state and applied positions, as JSON values (a copy)."""
        out = [
            {k: ks.dump(stage) for k, ks in s.items()}
            for stage, s in zip(self.projection.stages, self.states, strict=True)
        ]
        return json.loads(json.dumps(out))  # type: ignore[no-any-return]

    def values(self) -> list[dict[str, Any]]:
        """Every key's state (without the positions), as JSON values."""
        out = [
            {k: None if ks.state is None else stage.dump(ks.state) for k, ks in s.items()}
            for stage, s in zip(self.projection.stages, self.states, strict=True)
        ]
        return json.loads(json.dumps(out))  # type: ignore[no-any-return]

    def state(self, stage: int, key: str) -> Any:
        ks = self.states[stage].get(key)
        return None if ks is None else ks.state

    def last(self) -> dict[str, Write]:
        """The write per slot a sink ends with."""
        return {w.slot: w for w in coalesce(self.writes)}

    def current_of(self, batch: Sequence[Item[Any]]) -> list[Write]:
        """What a replay of `batch` writes: the current value of each key it names, and of the keys
        downstream of a forwarding stage's replayed keys (what their items went to)."""
        out: list[Write] = []
        refreshed: list[list[str]] = [[] for _ in self.projection.stages]
        for index, stage in enumerate(self.projection.stages):
            entering = [i.key for i in batch if self.projection.entry(i.value.envelope.event_type) == index]
            for key in dict.fromkeys(entering + refreshed[index]):
                state = self.state(index, key)
                if state is None:
                    continue
                if stage.forwards:
                    refreshed[index + 1] += stage.downstream(key, state)
                else:
                    out += stage.current(key, state)
        return out


def same_writes(a: Sequence[Write], b: Sequence[Write]) -> bool:
    """The same writes, in any order (a sink coalesces a batch's writes per slot)."""
    return sorted(map(repr, a)) == sorted(map(repr, b))


# --- histories --------------------------------------------------------------------------------------

STOCK = event_type("ecommerce.inventory.stock.adjusted.v1")


@st.composite
def stock_histories(draw: st.DrawFn, legacy: bool = True, late: int = LATE) -> tuple[History, dict[str, Any]]:
    """Adjustments of a few products as the inventory service writes them (1.1: with the stock row's
    after-state and version; some products from a 1.0 producer: deltas only), and per product
    what its stock is in the end: (on hand, reserved, adjustments, units ordered)."""
    history: History = []
    finals: dict[str, Any] = {}
    for p in range(draw(st.integers(1, 4))):
        product = f"P-{p}"
        old = legacy and draw(st.booleans())
        reasons = ["RESTOCK", "RESERVATION", "RELEASE", "SENSOR", "MANUAL"] + ([] if old else ["SHIPMENT"])
        on_hand = reserved = version = ordered = 0
        at = T0 + draw(st.integers(0, 5_000))
        for reason, qty, gap in draw(
            st.lists(st.tuples(st.sampled_from(reasons), st.integers(1, 20), st.integers(1, 4_000)), max_size=20)
        ):
            if reason in ("RESTOCK", "MANUAL"):
                on_hand, delta = on_hand + qty, qty
            elif reason == "SENSOR":
                qty = min(qty, on_hand - reserved)
                on_hand, delta = on_hand - qty, -qty
            elif reason == "RESERVATION":
                qty = min(qty, on_hand - reserved)
                reserved, delta = reserved + qty, -qty
            elif reason == "RELEASE":
                qty = min(qty, reserved)
                reserved, delta = reserved - qty, qty
            else:  # SHIPMENT: reserved units leave; available unchanged
                qty = min(qty, reserved)
                on_hand, reserved, delta = on_hand - qty, reserved - qty, 0
            if qty == 0:
                continue
            version += 1
            at += gap
            ordered += units_ordered(reason, delta)
            order = f"O-{draw(st.integers(0, 9))}" if reason in RESERVED_REASONS else None
            n = len(history)
            event = StockAdjusted(
                envelope_of(STOCK, product, at, n),
                product,
                delta,
                reason,
                order,
                on_hand - reserved,
                None if old else on_hand,
                None if old else reserved,
                None if old else version,
            )
            history.append((event, draw(st.integers(0, late))))
        if version:
            finals[product] = (on_hand, reserved, version, ordered)
    return history, finals


PAID, CANCELED = event_type("ecommerce.order.order.paid.v1"), event_type("ecommerce.order.order.canceled.v1")
CREATED, FULFILLED = event_type("ecommerce.order.order.created.v1"), event_type("ecommerce.order.order.fulfilled.v1")
FATES = ("pending", "canceled", "paid", "fulfilled", "refunded")


@st.composite
def order_histories(draw: st.DrawFn, late: int = LATE) -> History:
    """Orders through their lifecycle (created → canceled, or paid → fulfilled or refunded, or
    left pending), in two currencies, over a few minutes."""
    history: History = []
    for o in range(draw(st.integers(0, 12))):
        order, user = f"O-{o}", f"U-{draw(st.integers(0, 3))}"
        amount = Money(draw(st.integers(0, 10**7)), draw(st.sampled_from(["USD", "EUR"])))
        fate = draw(st.sampled_from(FATES))
        at = T0 + draw(st.integers(0, 5 * 60_000))
        steps = [CREATED]
        steps += {
            "canceled": [CANCELED],
            "paid": [PAID],
            "fulfilled": [PAID, FULFILLED],
            "refunded": [PAID, CANCELED],
        }.get(fate, [])
        for n, kind in enumerate(steps):
            at += draw(st.integers(0, 90_000)) if n else 0
            e = envelope_of(kind, order, at, len(history))
            if kind is CREATED:
                event: Any = OrderCreated(e, order, user, amount, (OrderItem("P-1", 1, amount),))
            elif kind is PAID:
                event = OrderPaid(e, order, user, f"pay-{o}", amount, at)
            elif kind is FULFILLED:
                event = OrderFulfilled(e, order, user, at, None)
            elif fate == "refunded":
                event = OrderCanceled(e, order, user, "refund", "ADM-1", ())
            else:
                event = OrderCanceled(e, order, user, "customer", user, (ReleasedItem("P-1", 1),))
            history.append((event, draw(st.integers(0, late))))
    return history


UPDATED = event_type("ecommerce.product.product.updated.v1")


@st.composite
def product_histories(draw: st.DrawFn, late: int = LATE) -> History:
    """Updates of a few products: row versions 1, 2, … (none from a contract 1.0 producer)."""
    history: History = []
    for p in range(draw(st.integers(0, 4))):
        product = f"P-{p}"
        at = T0 + draw(st.integers(0, 5_000))
        old = draw(st.booleans()) and draw(st.booleans())
        for version in range(1, draw(st.integers(1, 8)) + 1):
            at += draw(st.integers(1, 20_000))
            price = Money(draw(st.integers(100, 9_999)), "USD")
            event = ProductUpdated(
                envelope_of(UPDATED, product, at, 10_000 + len(history)),
                product,
                f"SKU-{p}",
                f"Product {p}",
                None,
                price,
                version,
                draw(st.booleans()),
                None if old else version,
            )
            history.append((event, draw(st.integers(0, late))))
    return history


@st.composite
def serving_histories(draw: st.DrawFn, late: int = LATE) -> History:
    return draw(product_histories(late)) + draw(order_histories(late))


STARTED = event_type("ecommerce.pricing.flash_sale.started.v1")
ENDED = event_type("ecommerce.pricing.flash_sale.ended.v1")


@st.composite
def sale_histories(draw: st.DrawFn, late: int = LATE) -> History:
    """Flash sales of a few products, announced ahead of their start; some ended early by an admin."""
    history: History = []
    for s in range(draw(st.integers(0, 10))):
        sale, product = f"S-{s}", f"P-{draw(st.integers(0, 2))}"
        starts = T0 + draw(st.integers(0, 10 * 60_000))
        ends = starts + draw(st.integers(1, 5 * 60_000))
        announced = starts - draw(st.integers(0, 60_000))
        price, regular = Money(draw(st.integers(1, 999)), "USD"), Money(1_000, "USD")
        started = FlashSaleStarted(
            envelope_of(STARTED, product, announced, 20_000 + len(history)), sale, product, price, regular, starts, ends
        )
        history.append((started, draw(st.integers(0, late))))
        if draw(st.booleans()):
            ended_at = draw(st.integers(starts, ends - 1))
            ended = FlashSaleEnded(
                envelope_of(ENDED, product, ended_at, 20_000 + len(history)), sale, product, ends, ended_at, "ADM-1"
            )
            history.append((ended, draw(st.integers(0, late))))
    return history


SNAPSHOT = event_type("ecommerce.inventory.stock_snapshot.updated.v1")


@st.composite
def snapshot_histories(draw: st.DrawFn, late: int = LATE) -> History:
    """The inventory_snapshot projection's records of a few products: stock versions 1, 2, …"""
    history: History = []
    for p in range(draw(st.integers(0, 3))):
        product = f"P-{p}"
        at = T0 + draw(st.integers(0, 5_000))
        for version in range(1, draw(st.integers(1, 6)) + 1):
            at += draw(st.integers(1, 20_000))
            on_hand, reserved = draw(st.integers(0, 50)), draw(st.integers(0, 5))
            reserved = min(reserved, on_hand)
            event = StockSnapshotUpdated(
                envelope_of(SNAPSHOT, product, at, 30_000 + len(history)),
                product,
                on_hand,
                reserved,
                on_hand - reserved,
                version,
                at,
            )
            history.append((event, draw(st.integers(0, late))))
    return history


@st.composite
def search_histories(draw: st.DrawFn, late: int = LATE) -> History:
    return draw(product_histories(late)) + draw(snapshot_histories(late)) + draw(sale_histories(late))


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    projection: Callable[[], Projection]
    histories: st.SearchStrategy[History]  # anything the producers write
    deduplicable: st.SearchStrategy[History]  # histories whose redeliveries a consumer can tell

    def __str__(self) -> str:
        return self.name


CASES = [
    Case(
        "inventory_snapshot",
        lambda: inventory_snapshot.projection(InventorySnapshotSettings()),
        stock_histories().map(lambda hf: hf[0]),
        stock_histories(legacy=False).map(lambda hf: hf[0]),  # 1.0 records carry no version
    ),
    Case(
        "revenue_windows",
        lambda: revenue_windows.projection(RevenueWindowsSettings(grace_ms=GRACE)),
        order_histories(),
        order_histories(),
    ),
    Case(
        "flash_sale_price_map",
        lambda: flash_sale_price_map.projection(FlashSalePriceMapSettings()),
        sale_histories(),
        sale_histories(),
    ),
    Case(
        "serving_caches",
        lambda: serving_caches.projection(ServingCachesSettings()),
        serving_histories(),
        serving_histories(),
    ),
    Case(
        "product_search_index",
        lambda: product_search_index.projection(ProductSearchIndexSettings()),
        search_histories(),
        search_histories(),
    ),
]


def test_the_cases_are_the_projections() -> None:
    assert [c.name for c in CASES] == [
        inventory_snapshot.NAME,
        revenue_windows.NAME,
        flash_sale_price_map.NAME,
        serving_caches.NAME,
        product_search_index.NAME,
    ]
    assert all(c.projection().name == c.name for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
@PROPERTY
@given(data=st.data())
def test_the_generated_events_are_valid_inputs_read_in_partition_order(case: Case, data: st.DataObject) -> None:
    projection = case.projection()
    items = deliver(projection, data.draw(case.histories, "history"))
    inputs = {e.name for e in projection.inputs}
    last: dict[str, tuple[int, int]] = {}
    for item in items:
        assert item.value.envelope.event_type in inputs
        projection.check(item.value)  # what the engine dead-letters: none of them
        assert item.key == item.value.envelope.partition_key
        assert item.at.partition == partition_of(item.value)
        previous = last.get(item.at.partition, (NEVER, NEVER))
        assert item.at.offset > previous[0], "each partition is read in order"
        assert item.event_time >= previous[1], "a partition holds its records in event-time order"
        last[item.at.partition] = (item.at.offset, item.event_time)
    watermarks = [i.watermark for i in items]
    assert watermarks == sorted(watermarks), "the watermark never moves back"
    assert all(w <= max(i.event_time for i in items[: n + 1]) for n, w in enumerate(watermarks))


# --- (a) batches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
@PROPERTY
@given(data=st.data())
def test_any_split_into_batches_gives_the_same_state_and_the_same_last_writes(case: Case, data: st.DataObject) -> None:
    projection = case.projection()
    items = deliver(projection, data.draw(case.histories, "history"))
    cuts, restart = data.draw(cuts_st, "cuts"), data.draw(st.booleans(), "restart between batches")
    whole = Run(projection)
    whole.feed(items)
    split = Run(projection)
    for batch in batches(items, cuts):
        split.feed(batch)
        if restart:
            split.restart()
    one_by_one = Run(projection)
    one_by_one.feed(*([i] for i in items))
    assert split.dumped() == whole.dumped()
    assert split.last() == whole.last()
    assert one_by_one.dumped() == whole.dumped()
    assert one_by_one.last() == whole.last()
    assert sum(r.replayed for r in whole.runners + split.runners + one_by_one.runners) == 0


# --- (b) redeliveries -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
@PROPERTY
@given(data=st.data())
def test_redelivered_events_within_and_across_batches_change_nothing(case: Case, data: st.DataObject) -> None:
    projection = case.projection()
    items = deliver(projection, data.draw(case.deduplicable, "history"))
    copies, cuts = data.draw(copies_st, "copies"), data.draw(cuts_st, "cuts")
    once = Run(projection)
    once.feed(items)
    again = redelivered(items, copies)
    assert len(again) == len(items) + (len(copies) if items else 0)
    twice = Run(projection)
    twice.feed(*batches(again, cuts))
    assert twice.values() == once.values()
    assert twice.last() == once.last()
    assert sum(r.replayed for r in twice.runners) == 0, "a redelivery is a new position: not a replay"


def test_a_contract_1_0_adjustment_redelivered_is_counted_twice_which_is_why_1_1_carries_versions() -> None:
    """(b) is only asked of 1.1 histories: this is what 1.0 records cannot avoid."""
    projection = inventory_snapshot.projection(InventorySnapshotSettings())
    restock = StockAdjusted(envelope_of(STOCK, "P-1", T0, 1), "P-1", 5, "RESTOCK", None, 5, None, None, None)
    item = Item("P-1", restock, Position("stock[0]", 0), T0, NEVER, "t", "c")
    run = Run(projection)
    run.feed([item, msgspec.structs.replace(item, at=Position("stock[0]", 1))])
    assert run.state(0, "P-1").snapshot.on_hand == 10


# --- (c) replays ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
@PROPERTY
@given(data=st.data())
def test_replaying_applied_items_changes_no_state_and_writes_current_values(case: Case, data: st.DataObject) -> None:
    projection = case.projection()
    items = deliver(projection, data.draw(case.histories, "history"))
    run = Run(projection)
    run.feed(*batches(items, data.draw(cuts_st, "cuts")))
    before, written = run.dumped(), run.last()
    prefix = items[: data.draw(st.integers(0, len(items)), "replayed prefix")]
    replayed: list[Write] = []
    for batch in batches(prefix, data.draw(cuts_st, "replay cuts")):
        expected = run.current_of(batch)
        writes = run.feed(batch)
        assert same_writes(writes, expected), "a replay re-writes the replayed keys' current values"
        replayed += writes
    assert run.dumped() == before, "a replay changes no state"
    assert sum(r.replayed for r in run.runners) == len(prefix)
    for w in replayed:
        assert w.slot in written, f"a replay wrote {w.slot}, which the run never wrote"
        assert w.version <= written[w.slot].version, "a replay never writes a newer version"
    for w in coalesce(replayed):  # the current value of an entity is the one written last
        if isinstance(w, Invalidate):
            assert w == written[w.slot]
        elif isinstance(w, Upsert):
            last = written[w.slot]
            assert isinstance(last, Upsert) and (w.version, w.fields) == (last.version, last.fields), w.slot


@pytest.mark.parametrize("case", CASES, ids=str)
@PROPERTY
@given(data=st.data())
def test_resuming_from_behind_the_applied_positions_ends_where_one_run_ends(case: Case, data: st.DataObject) -> None:
    """An engine that restarts from a store's older positions: it reads again what it had applied."""
    projection = case.projection()
    items = deliver(projection, data.draw(case.histories, "history"))
    read = data.draw(st.integers(0, len(items)), "read before the restart")
    resume = data.draw(st.integers(0, read), "resumed from")
    whole = Run(projection)
    whole.feed(items)
    resumed = Run(projection)
    resumed.feed(*batches(items[:read], data.draw(cuts_st, "cuts")))
    resumed.restart()
    resumed.feed(*batches(items[resume:], data.draw(cuts_st, "cuts after")))
    assert resumed.dumped() == whole.dumped()
    assert sum(r.replayed for r in resumed.runners) == read - resume
    newest = {slot: w.version for slot, w in whole.last().items()}
    assert {slot: w.version for slot, w in resumed.last().items()} == newest
    for slot, w in resumed.last().items():
        if isinstance(w, Upsert):
            assert w.fields == whole.last()[slot].fields, slot


def test_a_replay_of_the_revenue_log_rewrites_its_windows() -> None:
    """The order stage writes nothing itself: its replayed keys refresh the windows their deltas
    went to, so a store that lost them gets them back."""
    projection = revenue_windows.projection(RevenueWindowsSettings(grace_ms=GRACE))
    order = "O-1"
    paid = OrderPaid(envelope_of(PAID, order, T0 + 1_000, 1), order, "U-1", "pay-1", Money(500, "USD"), T0 + 1_000)
    item = Item(order, paid, Position(partition_name(PAID.topic, 0), 0), T0 + 1_000, NEVER, "t", "c")
    run = Run(projection)
    assert {w.slot for w in run.feed([item]) if isinstance(w, Upsert)} == {
        f"revenue:1m:USD:{T0}",
        f"revenue:1d:USD:{T0}",
    }
    rewritten = run.feed([item])  # the store lost those keys: the engine replays from its positions
    assert {w.slot for w in rewritten if isinstance(w, Upsert)} == {f"revenue:1m:USD:{T0}", f"revenue:1d:USD:{T0}"}


# --- (d) brute force --------------------------------------------------------------------------------


@BRUTE
@given(stock_histories(), copies_st, cuts_st)
def test_inventory_ends_at_each_products_last_after_state(
    history_finals: tuple[History, dict[str, Any]], copies: list[tuple[int, int]], cuts: list[int]
) -> None:
    history, finals = history_finals
    projection = inventory_snapshot.projection(InventorySnapshotSettings())
    items = deliver(projection, history)
    legacy = any(e.stock_version is None for e, _ in history)
    run = Run(projection)
    run.feed(*batches(items if legacy else redelivered(items, copies), cuts))
    assert set(run.states[0]) == set(finals)
    last = run.last()
    for product, (on_hand, reserved, version, ordered) in finals.items():
        stock = run.state(0, product)
        assert (stock.snapshot.on_hand, stock.snapshot.reserved, stock.snapshot.version) == (on_hand, reserved, version)
        assert stock.ordered == ordered
        newest = max((e for e, _ in history if e.product_id == product), key=lambda e: e.envelope.occurred_at)
        assert stock.snapshot.updated_at == newest.envelope.occurred_at
        upsert = last[inventory_snapshot.REDIS_KEY.format(product)]
        assert isinstance(upsert, Upsert) and upsert.version == version
        assert upsert.fields == {
            "productId": product,
            "onHand": str(on_hand),
            "reserved": str(reserved),
            "available": str(on_hand - reserved),
            "updatedAt": str(newest.envelope.occurred_at),
        }
        emit = last[f"{inventory_snapshot.SNAPSHOT.topic} {product}"]
        assert isinstance(emit, Emit) and emit.payload["version"] == version
        assert emit.trace_id == newest.envelope.trace_id, "the snapshot names the adjustment it reflects"
        low = last[f"{inventory_snapshot.LOW_STOCK_KEY} {product}"]
        assert isinstance(low, Rank) and low.score == (on_hand - reserved if is_low(on_hand - reserved) else None)
        top = last[f"{inventory_snapshot.TOP_PRODUCTS} {product}"]
        assert isinstance(top, Rank) and top.score == ordered


def revenue_brute_force(history: History) -> dict[tuple[str, str, int], tuple[int, int]]:
    """(currency, window, start) → (amount, orders): every payment at its time, less each
    cancellation of a paid order at the cancellation's time."""
    paid = {e.order_id: e for e, _ in history if isinstance(e, OrderPaid)}
    sums: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    for event, _ in history:
        if isinstance(event, OrderPaid):
            amount, sign = event.amount, 1
        elif isinstance(event, OrderCanceled) and event.order_id in paid:
            amount, sign = paid[event.order_id].amount, -1
        else:
            continue
        for name, size in WINDOWS.items():
            slot = sums[(amount.currency, name, window_start(event.envelope.occurred_at, size))]
            slot[0] += sign * amount.amount_minor
            slot[1] += sign
    return {k: (v[0], v[1]) for k, v in sums.items()}


@BRUTE
@given(order_histories(late=GRACE // 2 - 1), copies_st, cuts_st)
def test_revenue_windows_equal_brute_force_sums_when_every_event_is_within_the_grace_period(
    history: History, copies: list[tuple[int, int]], cuts: list[int]
) -> None:
    projection = revenue_windows.projection(RevenueWindowsSettings(grace_ms=GRACE))
    items = deliver(projection, history)
    run = Run(projection)
    run.feed(*batches(redelivered(items, copies), cuts))
    windows: dict[tuple[str, str, int], tuple[int, int]] = {}
    for currency, ks in run.states[1].items():
        assert ks.state.late == 0, "nothing within the grace period is late"
        for held, final in ((ks.state.open, False), (ks.state.closed, True)):
            for slot_key, (amount, orders, _) in held.items():
                name, start = slot_key.split(":")
                windows[(currency, name, int(start))] = (amount, orders)
                upsert = run.last()[revenue_windows.REDIS_KEY.format(window=name, currency=currency, start=start)]
                assert isinstance(upsert, Upsert)
                assert (upsert.fields["amountMinor"], upsert.fields["orders"]) == (str(amount), str(orders))
                assert upsert.fields["final"] == ("1" if final else "0")
    assert windows == revenue_brute_force(history)


@BRUTE
@given(serving_histories(), copies_st, cuts_st)
def test_order_status_is_the_highest_ranked_status_and_a_product_floor_its_newest_version(
    history: History, copies: list[tuple[int, int]], cuts: list[int]
) -> None:
    settings_ = ServingCachesSettings()
    projection = serving_caches.projection(settings_)
    items = deliver(projection, history)
    run = Run(projection)
    run.feed(*batches(redelivered(items, copies), cuts))
    last = run.last()
    newest: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))  # (version, its event time)
    statuses: dict[str, list[Any]] = defaultdict(list)
    for event, _ in history:
        if isinstance(event, ProductUpdated):
            newest[event.product_id] = max(newest[event.product_id], (event.version or 0, event.envelope.occurred_at))
        else:
            statuses[event.order_id].append(event)
    for product, (version, at) in newest.items():
        floor = serving_caches.FLOOR.format(product)
        if version == 0:
            assert run.state(0, product) is None and floor not in last, "1.0 records predate every cached copy"
            continue
        assert run.state(0, product) == (version, at)
        # the floor stays until the update's event time plus its TTL (the same instant in any run)
        assert last[floor] == Invalidate(
            floor, version, (f"product:{product}", f"gql:product:{product}"), at + settings_.floor_ttl_s * 1000
        )
    for order, events in statuses.items():
        top = max(events, key=lambda e: STATUS_RANK[serving_caches.STATUS_OF[type(e)]])
        status = serving_caches.STATUS_OF[type(top)]
        at = top.envelope.occurred_at
        assert run.states[1][order].dump(projection.stages[1])["s"] == [status.value, top.user_id, at]
        upsert = last[f"order_status:{order}"]
        assert upsert == Upsert(
            f"order_status:{order}",
            STATUS_RANK[status],
            {"status": status.value, "userId": top.user_id, "updatedAt": str(at)},
            at + serving_caches.TERMINAL_LINGER_MS if is_final(status) else None,
        )
    assert set(run.states[1]) == set(statuses)


@BRUTE
@given(sale_histories(), copies_st, cuts_st)
def test_the_price_map_holds_the_sales_started_not_ended_and_not_over(
    history: History, copies: list[tuple[int, int]], cuts: list[int]
) -> None:
    projection = flash_sale_price_map.projection(FlashSalePriceMapSettings())
    items = deliver(projection, history)
    run = Run(projection)
    run.feed(*batches(redelivered(items, copies), cuts))
    last = run.last()
    for product in {e.product_id for e, _ in history}:
        seen = max(e.envelope.occurred_at for e, _ in history if e.product_id == product)
        ended = {e.sale_id for e, _ in history if isinstance(e, FlashSaleEnded)}
        live = sorted(
            (e for e, _ in history if isinstance(e, FlashSaleStarted) and e.product_id == product),
            key=lambda e: (e.starts_at, e.sale_id),
        )
        expected = [
            {
                "saleId": e.sale_id,
                "priceMinor": e.sale_price.amount_minor,
                "currency": "USD",
                "regularMinor": e.regular_price.amount_minor,
                "startsAt": e.starts_at,
                "endsAt": e.ends_at,
            }
            for e in live
            if e.sale_id not in ended and e.ends_at > seen
        ]
        price_map = run.state(0, product)
        assert price_map.watermark == seen
        assert price_map.to_cache() == expected
        upsert = last[flash_sale_price_map.REDIS_KEY.format(product)]
        assert isinstance(upsert, Upsert) and upsert.version == price_map.version
        assert json.loads(upsert.fields["sales"]) == expected


# --- product_search_index ----------------------------------------------------------------------------


@PROPERTY
@given(history=search_histories(late=0))
def test_the_search_document_is_the_newest_product_stock_and_sales_and_gone_when_withdrawn(history: History) -> None:
    projection = product_search_index.projection(ProductSearchIndexSettings())
    run = Run(projection)
    run.feed(deliver(projection, history))
    products = {e.product_id: e for e, _ in history if isinstance(e, ProductUpdated)}
    newest: dict[str, ProductUpdated] = {}
    for e, _ in history:
        if isinstance(e, ProductUpdated):
            held = newest.get(e.product_id)
            if held is None or ((e.version or 0), e.envelope.occurred_at) > (
                (held.version or 0),
                held.envelope.occurred_at,
            ):
                newest[e.product_id] = e
    stock: dict[str, StockSnapshotUpdated] = {}
    for e, _ in history:
        if isinstance(e, StockSnapshotUpdated) and (
            e.product_id not in stock or e.version > stock[e.product_id].version
        ):
            stock[e.product_id] = e
    docs = {w.id: w for w in run.last().values() if isinstance(w, Document)}
    assert set(docs) == set(products), "a document for every product with product data, and only those"
    for product_id, doc in docs.items():
        want = newest[product_id]
        assert doc.index == "products"
        if not want.active:
            assert doc.body is None
            continue
        assert doc.body is not None
        assert (doc.body["name"], doc.body["price_minor"]) == (want.name, want.price.amount_minor)
        if product_id in stock:
            assert doc.body["available"] == stock[product_id].available
            assert doc.body["in_stock"] is (stock[product_id].available > 0)
        else:
            assert "available" not in doc.body and "in_stock" not in doc.body
        state = run.state(0, product_id)
        assert doc.version == state.version
        assert [s["sale_id"] for s in doc.body["flash_sales"]] == [s["saleId"] for s in state.price_map().to_cache()]


def test_a_search_document_version_grows_with_every_change_and_a_duplicate_writes_nothing() -> None:
    projection = product_search_index.projection(ProductSearchIndexSettings())
    product = ProductUpdated(
        envelope_of(UPDATED, "P-1", T0, 1), "P-1", "SKU-1", "Kettle", "1.7 l", Money(3_999, "USD"), 1, True, 1
    )
    snap = StockSnapshotUpdated(envelope_of(SNAPSHOT, "P-1", T0 + 1, 2), "P-1", 5, 1, 4, 3, T0 + 1)
    sale = FlashSaleStarted(
        envelope_of(STARTED, "P-1", T0 + 2, 3), "S-1", "P-1", Money(2_999, "USD"), Money(3_999, "USD"), T0, T0 + 60_000
    )
    withdrawn = msgspec.structs.replace(
        product, envelope=envelope_of(UPDATED, "P-1", T0 + 3, 4), active=False, version=2
    )

    def item(event: Any, offset: int) -> Item[Any]:
        return Item("P-1", event, Position(partition_of(event), offset), event.envelope.occurred_at, NEVER, "t", "c")

    run = Run(projection)
    versions = []
    for n, event in enumerate([product, snap, sale]):
        (doc,) = run.feed([item(event, n * GAP)])
        assert isinstance(doc, Document) and doc.body is not None
        versions.append(doc.version)
    assert versions == [1, 4, 5]
    assert doc.body is not None and doc.body["flash_sales"][0]["price_minor"] == 2_999
    assert run.feed([item(snap, 9 * GAP)]) == [], "a redelivered snapshot changes nothing"
    (gone,) = run.feed([item(withdrawn, 10 * GAP)])
    assert isinstance(gone, Document) and gone.body is None and gone.version == 6
