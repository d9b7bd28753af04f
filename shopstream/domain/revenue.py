"""Revenue windows: event-time tumbling windows of paid revenue per currency, where a cancellation
(or refund) of a paid order subtracts. Pure; every engine and the replay call these.

Two keyed steps, because the inputs are keyed by order and the windows by currency:

1. per order (`OrderRevenue`): order.paid → +amount, an order.canceled of that paid order →
   −amount (booked at the cancellation's time, in whichever order the two are read),
   order.fulfilled → only a marker is kept. Duplicates (Debezium redelivers at least once)
   change nothing, before or after fulfilment.
2. per currency (`RevenueWindows`): each `RevenueDelta` lands in its 1-minute and 1-day window;
   the running value goes out on every change, the final value once the watermark passes the
   window's end plus the grace period; later deltas for a closed window are dropped and counted
   as late. The watermark is the caller's: the dataflow's is the minimum over its input
   partitions of each one's progress (`streams.core.PartitionClock`), so a backlog read from one
   partition first does not make the others' on-time events late."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from shopstream.domain.typed_events import OrderCanceled, OrderEvent, OrderFulfilled, OrderPaid

# window name → length (ms)
WINDOWS: dict[str, int] = {"1m": 60_000, "1d": 86_400_000}
# window name → the WindowSize symbol of the revenue_window.updated contract
WINDOW_SIZES = {"1m": "MINUTE", "1d": "DAY"}
DEFAULT_GRACE_MS = 10_000
# how long (event time) a closed window's final value stays in the state after it closed: long
# enough to write it again when a store lost it (the stores are repaired within minutes)
KEEP_CLOSED_MS = 3_600_000


class RevenueDelta(msgspec.Struct, frozen=True, gc=False):
    """A change of revenue at an event time: + a payment, − the cancellation of a paid order."""

    currency: str
    at: int  # event time, epoch ms
    amount_minor: int
    orders: int  # +1 for a payment, -1 for its cancellation
    order_id: str

    def to_state(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "at": self.at,
            "amount_minor": self.amount_minor,
            "orders": self.orders,
            "order_id": self.order_id,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RevenueDelta:
        return cls(**state)


class OrderRevenue(msgspec.Struct, frozen=True, gc=False):
    """What step 1 remembers of one order: its payment, and when it was canceled. The paid and
    canceled events travel on different topics, so a cancellation may be read first: it is kept
    until the payment shows up, and then both are booked."""

    amount_minor: int = 0
    currency: str = ""
    paid: bool = False
    canceled_at: int | None = None
    fulfilled: bool = False

    def to_state(self) -> dict[str, Any]:
        return {
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "paid": self.paid,
            "canceled_at": self.canceled_at,
            "fulfilled": self.fulfilled,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OrderRevenue:
        return cls(**state)


def on_order_paid(
    state: OrderRevenue | None, order_id: str, amount_minor: int, currency: str, at: int
) -> tuple[OrderRevenue, list[RevenueDelta]]:
    """(new state, deltas to book); a repeated payment event books nothing."""
    if state is not None and state.paid:
        return state, []
    paid = RevenueDelta(currency, at, amount_minor, 1, order_id)
    canceled_at, fulfilled = (None, False) if state is None else (state.canceled_at, state.fulfilled)
    after = OrderRevenue(amount_minor, currency, True, canceled_at, fulfilled)
    if after.canceled_at is not None:  # the cancellation was read first
        return after, [paid, RevenueDelta(currency, after.canceled_at, -amount_minor, -1, order_id)]
    return after, [paid]


def on_order_canceled(state: OrderRevenue | None, order_id: str, at: int) -> tuple[OrderRevenue, list[RevenueDelta]]:
    """A cancellation subtracts what was paid, once; before the payment is seen it is only kept."""
    if state is not None and state.canceled_at is not None:
        return state, []
    if state is None or not state.paid:
        return msgspec.structs.replace(state or OrderRevenue(), canceled_at=at), []
    after = msgspec.structs.replace(state, canceled_at=at)
    return after, [RevenueDelta(state.currency, at, -state.amount_minor, -1, order_id)]


def revenue_delta(state: OrderRevenue | None, event: OrderEvent) -> tuple[OrderRevenue, list[RevenueDelta]]:
    """Step 1 for one order event: (the order's new state, the deltas to book)."""
    at = event.envelope.occurred_at
    if isinstance(event, OrderPaid):
        return on_order_paid(state, event.order_id, event.amount.amount_minor, event.amount.currency, at)
    if isinstance(event, OrderCanceled):
        return on_order_canceled(state, event.order_id, at)
    if isinstance(event, OrderFulfilled):
        # kept (a marker), so that a redelivered payment of a fulfilled order books nothing; a
        # payment read after its fulfilment (another topic) still books
        return msgspec.structs.replace(state or OrderRevenue(), fulfilled=True), []
    raise ValueError(f"revenue windows do not read {event.envelope.event_type}")


def window_start(at: int, size_ms: int) -> int:
    return at - at % size_ms


class WindowValue(msgspec.Struct, frozen=True, gc=False):
    """One window's value as it goes out: running (`final=False`) or final."""

    currency: str
    window: str  # "1m" | "1d"
    start: int  # epoch ms
    end: int
    amount_minor: int
    orders: int
    version: int  # changes of this window so far (final is the last); readers keep the highest
    final: bool

    @property
    def window_id(self) -> str:
        start = datetime.fromtimestamp(self.start / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.currency}:{self.window}:{start}"

    def to_record(self) -> dict[str, Any]:
        """The revenue_window.updated payload."""
        return {
            "windowId": self.window_id,
            "currency": self.currency,
            "window": WINDOW_SIZES[self.window],
            "windowStart": self.start,
            "windowEnd": self.end,
            "revenue": {"amountMinor": self.amount_minor, "currency": self.currency},
            "orders": self.orders,
            "version": self.version,
            "final": self.final,
        }


@dataclass
class RevenueWindows:
    """Step 2's state for one currency: its open windows, the recently closed ones, and its
    watermark."""

    currency: str
    grace_ms: int = DEFAULT_GRACE_MS
    watermark: int = -1
    # "1m:<start>" → [amount_minor, orders, version]
    open: dict[str, list[int]] = field(default_factory=dict)
    late: int = 0  # deltas dropped because their window had closed
    closed: dict[str, list[int]] = field(default_factory=dict)  # final values, for KEEP_CLOSED_MS

    def to_state(self) -> dict[str, Any]:
        return {"currency": self.currency, "grace_ms": self.grace_ms, "watermark": self.watermark,
                "open": self.open, "late": self.late, "closed": self.closed}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RevenueWindows:
        return cls(**state)

    def apply(self, delta: RevenueDelta) -> list[WindowValue]:
        """Book one delta: running values of the windows it changed. A delta for a window the
        watermark has closed changes nothing (counted as late)."""
        if delta.currency != self.currency:
            raise ValueError(f"a {delta.currency} delta in the {self.currency} windows")
        out: list[WindowValue] = []
        for name, size in WINDOWS.items():
            start = window_start(delta.at, size)
            if start + size + self.grace_ms <= self.watermark:
                self.late += 1
                continue
            slot = self.open.setdefault(f"{name}:{start}", [0, 0, 0])
            slot[0] += delta.amount_minor
            slot[1] += delta.orders
            slot[2] += 1
            out.append(self._value(name, start, slot, final=False))
        return out

    def advance(self, watermark: int) -> list[WindowValue]:
        """Move the watermark (never back): final values of the windows it closes."""
        if watermark <= self.watermark:
            return []
        self.watermark = watermark
        return self.close(watermark)

    def current(self) -> list[WindowValue]:
        """The value of every window the state holds: final ones closed lately, running ones."""
        out = []
        for values, final in ((self.closed, True), (self.open, False)):
            for slot_key, slot in sorted(values.items()):
                name, start_text = slot_key.split(":")
                out.append(self._value(name, int(start_text), slot, final=final))
        return out

    def close(self, watermark: int) -> list[WindowValue]:
        """Final values of every open window whose end + grace is at or before `watermark`."""
        closing = []
        for slot_key, slot in self.open.items():
            name, start_text = slot_key.split(":")
            if int(start_text) + WINDOWS[name] + self.grace_ms <= watermark:
                closing.append((int(start_text), name, slot_key, slot))
        out = []
        for start, name, slot_key, slot in sorted(closing):
            del self.open[slot_key]
            slot[2] += 1
            self.closed[slot_key] = slot
            out.append(self._value(name, start, slot, final=True))
        for slot_key in [k for k in self.closed if self._end(k) + self.grace_ms + KEEP_CLOSED_MS <= watermark]:
            del self.closed[slot_key]
        return out

    @staticmethod
    def _end(slot_key: str) -> int:
        name, start_text = slot_key.split(":")
        return int(start_text) + WINDOWS[name]

    def _value(self, name: str, start: int, slot: list[int], *, final: bool) -> WindowValue:
        return WindowValue(self.currency, name, start, start + WINDOWS[name], slot[0], slot[1], slot[2], final)
