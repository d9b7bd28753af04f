"""The projections kernel: what a projection is, what it writes, and the engine-neutral rules every
engine runs it by. Nothing here imports an engine, a client library or a store.

A projection is a chain of keyed **stages** (most have one). A stage's `step` takes one key's
state and the items of that key in a batch (a batch of one is the per-record case) and returns
the new state, the **writes** it causes and the items it forwards, re-keyed, to the next stage:

    Item(key, value, at=Position, event_time, watermark, trace_id, correlation_id)
      -> Stage.step(key, state, [items]) -> Stepped(state, [Upsert | Invalidate | Rank | Emit | Row | Document], [Item])

`StageRunner` wraps every stage the same way for every engine:

- **Replays change nothing.** Each key's state remembers, per input partition, the last position
  it applied; an item at or below it is a replay (a restarted engine, a store being repaired) and
  is not stepped again. A key that saw a replay writes its whole current value (`Stage.current`),
  so a store that lost writes gets them back, and the version compare-and-set of the sinks makes
  that harmless where nothing was lost.
- **Watermarks are per input partition.** `PartitionClock` keeps each partition's highest event
  time; the watermark is the minimum over the partitions that are not idle (no record for
  `idle_ms` of processing time), never moving back. One partition's backlog read first cannot
  push others' on-time events into "late" (how Flink and Kafka Streams define it).

Items, positions and writes are msgspec Structs (frozen; made once per record or write, at a tenth
of a frozen dataclass's cost).

Sinks apply the writes of a batch coalesced per slot (the newest version wins) and idempotent by
version; each records the source positions its writes reflect in the same atomic write, which is
where an engine resumes when a store is behind its own progress (`resume_offsets`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from shopstream.domain import EventType

S = TypeVar("S")  # a stage's per-key state
V = TypeVar("V")  # the value of the items a stage takes

# derived records get ids that replays reproduce: uuid5 of (topic, key, version)
RECORD_IDS = uuid.UUID("6f1c3a52-94f4-4b8e-9a55-2f0f5c1d7e11")
NEVER = -(2**63)  # a watermark before any event time


def partition_name(topic: str, partition: int) -> str:
    """How positions and progress name an input partition: `topic[p]`."""
    return f"{topic}[{partition}]"


def parse_partition_name(name: str) -> tuple[str, int]:
    topic, _, rest = name.rpartition("[")
    return topic, int(rest.rstrip("]"))


class Position(msgspec.Struct, frozen=True, order=True, gc=False):
    """Where an item comes from: an offset of an input partition, and which of the items one
    record made at an earlier stage (`sub`)."""

    partition: str
    offset: int
    sub: int = 0


class Item(msgspec.Struct, Generic[V], frozen=True, gc=False):
    """One input of a stage, keyed, with what its writes carry along."""

    key: str
    value: V
    at: Position
    event_time: int  # epoch ms
    # the input's watermark, as of a point where everything read before it has been applied
    # (NEVER: none yet); an engine that reorders items between stages stamps an older one; of
    # the items one record makes for one key of a later stage, only the last carries it
    watermark: int
    trace_id: str
    correlation_id: str
    epoch: int = 0  # the engine's epoch the item was read in (engines with epochs: Bytewax)

    def forward(self, key: str, value: Any, sub: int, event_time: int | None = None) -> Item[Any]:
        """An item for the next stage, caused by this one."""
        at = Position(self.at.partition, self.at.offset, self.at.sub * 16 + sub)
        when = self.event_time if event_time is None else event_time
        return Item(key, value, at, when, self.watermark, self.trace_id, self.correlation_id, self.epoch)


# --- writes --------------------------------------------------------------------------------------


class Upsert(msgspec.Struct, frozen=True, gc=False):
    """Set `fields` of the entity at `key` (with `version`) unless the store holds `version` or
    newer; optionally expire it at an instant."""

    key: str
    version: int
    fields: Mapping[str, str]
    expire_at_ms: int | None = None

    @property
    def slot(self) -> str:
        return self.key


class Invalidate(msgspec.Struct, frozen=True, gc=False):
    """Drop entries that readers cached (read-through) because `version` of their entity exists,
    and leave `version` as their floor at `key` until `expire_at_ms` (an instant of event time, as
    every expiry of the projections: a replay sets the same one), so a reader holding an older copy
    cannot put it back."""

    key: str  # the floor
    version: int
    drop: tuple[str, ...]
    expire_at_ms: int

    @property
    def slot(self) -> str:
        return self.key


class Rank(msgspec.Struct, frozen=True, gc=False):
    """A member's absolute score in a ranking (repeating it is harmless), or its removal when
    `score` is None."""

    key: str
    member: str
    score: int | None
    version: int

    @property
    def slot(self) -> str:
        return f"{self.key} {self.member}"


class Emit(msgspec.Struct, frozen=True, gc=False):
    """A record on a projection topic: the payload in the canonical envelope, keyed by the
    event type's partition key, with an id that every replay reproduces."""

    event: EventType
    version: int
    payload: Mapping[str, Any]
    occurred_at: int  # epoch ms
    trace_id: str
    correlation_id: str
    producer: str

    @property
    def key(self) -> str:
        return str(self.payload[self.event.partition_key])

    @property
    def slot(self) -> str:
        return f"{self.event.topic} {self.key}"

    def record(self) -> dict[str, Any]:
        key = self.key
        return {
            "eventId": str(uuid.uuid5(RECORD_IDS, f"{self.event.topic}:{key}:{self.version}")),
            "eventType": self.event.name,
            "occurredAt": self.occurred_at,
            "producer": self.producer,
            "traceId": self.trace_id,
            "correlationId": self.correlation_id,
            "schemaVersion": self.event.schema_version,
            "partitionKey": key,
            "payload": dict(self.payload),
        }


class Row(msgspec.Struct, frozen=True, gc=False):
    """A row of a wide-column table (Cassandra): `values` at the primary key `key` (the table's key
    columns and their values, in order) as of `version`; a store that holds a newer version keeps
    it (the version is the write's timestamp), so writes may land in any order. `delete`: the row
    goes (as of `version`)."""

    table: str
    key: tuple[tuple[str, Any], ...]
    version: int
    values: Mapping[str, Any]
    delete: bool = False

    @property
    def slot(self) -> str:
        return f"cql {self.table} {self.key!r}"


class Document(msgspec.Struct, frozen=True, gc=False):
    """A search document `id` in the index behind `index` (an alias) as of `version` (external
    versioning: the store refuses an older one); `body` None: the document goes."""

    index: str
    id: str
    version: int
    body: Mapping[str, Any] | None

    @property
    def slot(self) -> str:
        return f"search {self.index} {self.id}"


Write = Upsert | Invalidate | Rank | Emit | Row | Document
StoreWrite = Upsert | Invalidate | Rank


def coalesce(writes: Iterable[Write]) -> list[Write]:
    """The newest write per slot (a later one wins a tie): what a sink applies of a batch."""
    latest: dict[str, Write] = {}
    for w in writes:
        old = latest.get(w.slot)
        if old is None or old.version <= w.version:
            latest[w.slot] = w
    return list(latest.values())


# --- stages and projections -----------------------------------------------------------------------


@dataclass(slots=True)
class Stepped(Generic[S]):
    """What a step returns: the key's new state (None: forget the key), its writes, and items
    for the next stage."""

    state: S | None
    writes: list[Write] = field(default_factory=list)
    forward: list[Item[Any]] = field(default_factory=list)


class Stage(Protocol[S, V]):
    """One keyed step of a projection. A stage either writes or forwards (`forwards`): the
    positions a store records are those of the items of writing stages, read in order."""

    name: str
    forwards: bool
    ticks: bool  # whether `advance` does anything

    def step(self, key: str, state: S | None, items: Sequence[Item[V]]) -> Stepped[S]:
        """Apply the key's new items (in the order read) to its state."""
        ...

    def current(self, key: str, state: S) -> list[Write]:
        """Everything the key's state is in the stores now: what a replay re-writes."""
        ...

    def downstream(self, key: str, state: S) -> list[str]:
        """A forwarding stage: the next stage's keys this key's items went to (refreshed when
        this key sees a replay); a writing stage: none."""
        ...

    def advance(self, key: str, state: S, watermark: int) -> list[Write]:
        """The input's watermark moved on with no item for this key (an engine with timers
        calls this): what that changes, e.g. windows that turn final."""
        ...

    def dump(self, state: S) -> Any:
        """The state as JSON-able values (engines that serialize state keep this)."""
        ...

    def load(self, data: Any) -> S: ...


class BaseStage(Generic[S, V]):
    """The defaults of a writing stage: no next stage, nothing on a bare watermark, the state
    kept as it is (JSON-able already)."""

    name = "stage"
    forwards = False
    ticks = False  # whether `advance` does anything (engines with timers only call it then)

    def downstream(self, key: str, state: S) -> list[str]:
        return []

    def advance(self, key: str, state: S, watermark: int) -> list[Write]:
        return []

    def dump(self, state: S) -> Any:
        return state

    def load(self, data: Any) -> S:
        return data  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Projection:
    """A read model: the event types it reads, its stages, and the topics it writes. An input
    enters the stage `routes` names for its event type (the first by default); what a stage
    forwards goes to the next one."""

    name: str
    inputs: tuple[EventType, ...]
    stages: tuple[Stage[Any, Any], ...]
    emits: tuple[EventType, ...] = ()
    # extra checks of an input event (raise BadEvent: a dead letter)
    check: Callable[[Any], None] = lambda event: None
    routes: Mapping[str, int] = field(default_factory=dict)  # event type name → stage index
    # the stores its writes go to besides the projection topics (`streams.sinks.stores`)
    stores: tuple[str, ...] = ("redis",)
    # what its writes make, per store: Redis keys (glob patterns), Cassandra tables (logical
    # names), OpenSearch aliases — what a replay rebuilds beside them and its promotion swaps
    redis_keys: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    indices: tuple[str, ...] = ()
    # the kinds of its writes that act outside its own read models (records other consumers act
    # on): a replay never makes them again (`without_side_effects`)
    side_effects: tuple[type, ...] = (Emit,)
    # the OLTP tables a replay can re-seed it from when the log is not enough (`shopstream replay
    # run --reseed`, `streams.replay.reseed`): table → its rule making one row (as CDC gives it,
    # with the change's time in epoch ms) the typed input event of the projection's first stage,
    # carrying the version the events of that state carry; None: the row gives nothing to seed
    seeds: Mapping[str, Callable[[Mapping[str, Any], int], Any]] = field(default_factory=dict)

    def entry(self, event_type: str) -> int:
        return self.routes.get(event_type, 0)


def without_side_effects(projection: Projection, writes: Sequence[Write]) -> tuple[list[Write], int]:
    """The writes a replay makes of `writes`: none of the kinds the projection declares side
    effects; (kept, withheld)."""
    kept = [w for w in writes if not isinstance(w, projection.side_effects)]
    return kept, len(writes) - len(kept)


# --- the kernel's per-key bookkeeping --------------------------------------------------------------


@dataclass(slots=True)
class KeyState(Generic[S]):
    """A stage's state of one key, and the last position applied per input partition."""

    state: S | None = None
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)

    def dump(self, stage: Stage[S, Any]) -> dict[str, Any]:
        return {"s": None if self.state is None else stage.dump(self.state), "a": dict(self.applied)}

    @classmethod
    def load(cls, stage: Stage[S, Any], data: dict[str, Any]) -> KeyState[S]:
        state = None if data["s"] is None else stage.load(data["s"])
        return cls(state, {k: (v[0], v[1]) for k, v in data["a"].items()})


@dataclass(frozen=True, slots=True)
class Refresh:
    """The value of an item a forwarding stage sends on when it saw a replay: the next stage
    re-writes that key's current values (a store being repaired), stepping nothing."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The value of an item a forwarding stage sends to the next stage's keys its input made
    nothing for (`StageRunner(forward_watermarks=True)`: engines without timers, Quix): the
    input's watermark alone, which the next stage acts on (`Stage.advance`) stepping nothing —
    windows turn final without waiting for a later item of their own key."""


class StageRunner(Generic[S, V]):
    """Runs a stage's step for one key and batch, the same way for every engine.

    `dedupe`: skip items at or below the key's last applied position of their partition (a
    replay). Only where the engine hands a key its items in their partitions' order: every stage
    of an engine that keeps the order, the entry stages of one that does not (Bytewax).
    `forward_watermarks`: a forwarding stage sends a `Tick` to each of its key's downstream keys
    that an input made no item for (an engine without timers, whose later stages learn of the
    watermark only from items: Quix)."""

    def __init__(self, stage: Stage[S, V], dedupe: bool = True, forward_watermarks: bool = False) -> None:
        self.stage = stage
        self.dedupe = dedupe
        self.forward_watermarks = forward_watermarks
        self.replayed = 0  # items not stepped because their key had applied them

    def run(self, key: str, ks: KeyState[S], items: Sequence[Item[V]]) -> tuple[list[Write], list[Item[Any]]]:
        """Step `ks` (changed in place) over `items`; (writes, items for the next stage)."""
        applied = ks.applied
        fresh: list[Item[V]] = []
        replay: Item[V] | None = None
        tick: Item[V] | None = None
        for item in items:
            if type(item.value) is Refresh:
                replay = item
                continue
            if type(item.value) is Tick:
                tick = item if tick is None or item.watermark > tick.watermark else tick
                continue
            if self.dedupe:
                at = item.at
                last = applied.get(at.partition)
                mark = (at.offset, at.sub)
                if last is not None and mark <= last:
                    replay = item
                    self.replayed += 1
                    continue
                applied[at.partition] = mark
            fresh.append(item)
        writes: list[Write] = []
        forward: list[Item[Any]] = []
        stage = self.stage
        if fresh:
            out = stage.step(key, ks.state, fresh)
            ks.state = out.state
            writes, forward = out.writes, _watermark_after_the_last(out.forward)
            if (writes and stage.forwards) or (forward and not stage.forwards):
                raise RuntimeError(f"stage {stage.name} must either write or forward (forwards={stage.forwards})")
            newest = fresh[-1]
            if self.forward_watermarks and stage.forwards and ks.state is not None and newest.watermark != NEVER:
                made = {
                    i.key for i in forward if (i.at.partition, i.at.offset) == (newest.at.partition, newest.at.offset)
                }
                forward = forward + [
                    newest.forward(k, Tick(), 14) for k in stage.downstream(key, ks.state) if k not in made
                ]
        if tick is not None and ks.state is not None and stage.ticks:
            writes = writes + stage.advance(key, ks.state, tick.watermark)
        if replay is not None and ks.state is not None:
            if stage.forwards:  # the next stage re-writes what this key's items made of it
                forward = forward + [replay.forward(k, Refresh(), 15) for k in stage.downstream(key, ks.state)]
            else:
                writes = writes + stage.current(key, ks.state)
        return writes, forward

    def advance(self, key: str, ks: KeyState[S], watermark: int) -> list[Write]:
        """The watermark moved on with no item for `key` (engines with timers)."""
        return [] if ks.state is None else self.stage.advance(key, ks.state, watermark)


def _watermark_after_the_last(forward: list[Item[Any]]) -> list[Item[Any]]:
    """Of the items one input record made for one key of the next stage, only the last carries
    the record's watermark, the others NEVER: the next stage acts on it once it has applied all
    of them. (An engine that stamps the watermark as of after the record, Quix, would otherwise
    have a payment's delta close the window that the cancellation it books with it lands in.)"""
    if len(forward) < 2:
        return forward
    last = {(i.key, i.at.partition, i.at.offset): n for n, i in enumerate(forward)}
    return [
        i if last[(i.key, i.at.partition, i.at.offset)] == n else msgspec.structs.replace(i, watermark=NEVER)
        for n, i in enumerate(forward)
    ]


class PartitionClock:
    """The event-time watermark of a stage's input: the minimum over its partitions of each
    partition's highest event time, never moving back. A partition the engine has read to its end
    (`caught_up`) does not hold it back — what it has is all in; a partition with records still
    to read does, even one not seen yet, so after a restart a backlog on one partition cannot
    close windows on its own, however long it takes to read. When every partition is caught up,
    the watermark is the highest event time seen. (No wall-clock idleness: a partition that is
    behind is never idle, and one that is not behind is caught up.)"""

    def __init__(self) -> None:
        self.highest: dict[str, int] = {}
        self.current = NEVER

    def assign(self, partitions: Iterable[str]) -> None:
        """Partitions the engine reads from now on (not seen yet: they hold the watermark)."""
        for p in partitions:
            self.highest.setdefault(p, NEVER)

    def revoke(self, partitions: Iterable[str]) -> None:
        for p in partitions:
            self.highest.pop(p, None)

    def observe(self, partition: str, event_time: int) -> None:
        if event_time > self.highest.get(partition, NEVER):
            self.highest[partition] = event_time

    def watermark(self, caught_up: Collection[str] = ()) -> int:
        behind = [t for p, t in self.highest.items() if p not in caught_up]
        # everything read: what was seen is all there is
        low = min(behind) if behind else max(self.highest.values(), default=NEVER)
        if low > self.current:
            self.current = low
        return self.current


def resume_from(partition: str, engine_next: int | None, store: Mapping[str, int]) -> int | None:
    """Where to read a partition from when the store is behind the engine's own progress (its
    committed offset or recovery snapshot, `engine_next`); None: where the engine would anyway.

    A store that recorded positions but not this partition's has nothing of it to lose (its
    records caused no writes yet); a store that recorded none (new, or wiped) holds nothing, so
    it gets everything again. The replayed items are not stepped again (`StageRunner`)."""
    if engine_next is None:
        return None  # the engine starts from the beginning anyway
    if not store:
        return 0 if engine_next > 0 else None
    held = store.get(partition)
    return held if held is not None and held < engine_next else None


class Sink(Protocol):
    """Applies the writes of a batch, coalesced, idempotent by version, together with the source
    positions (next offset per partition) that they reflect."""

    def apply(self, writes: Sequence[Write], progress: Mapping[str, int]) -> int:
        """Write; how many writes changed the store."""
        ...

    def progress(self) -> dict[str, int]:
        """The positions the store's contents reflect (empty: it has none recorded)."""
        ...

    def close(self) -> None: ...


def run_batch(
    projection: Projection,
    runners: Sequence[StageRunner[Any, Any]],
    states: Sequence[dict[str, KeyState[Any]]],
    items: Sequence[Item[Any]],
) -> list[Write]:
    """One batch of input items through every stage in memory, each key's items in the order
    read: the writes. What the replay and the tests run; an engine does the same with its own
    routing and state (`states[i]` is stage i's state by key)."""
    entering: list[list[Item[Any]]] = [[] for _ in projection.stages]
    read: dict[tuple[str, int], int] = {}  # input position → when it was read
    for n, item in enumerate(items):
        entering[projection.entry(item.value.envelope.event_type)].append(item)
        read.setdefault((item.at.partition, item.at.offset), n)
    writes: list[Write] = []
    carried: list[Item[Any]] = []
    for index, runner in enumerate(runners):
        # forwarded items come out key by key: put them back in the order their inputs were read,
        # or a key of this stage sees a partition's positions out of order and skips the lower
        # ones as replays (and advances the watermark out of order)
        carried.sort(key=lambda i: read.get((i.at.partition, i.at.offset), len(items)))
        by_key: dict[str, list[Item[Any]]] = {}
        for item in (*entering[index], *carried):
            by_key.setdefault(item.key, []).append(item)
        carried = []
        for key, keyed in by_key.items():
            ks = states[index].setdefault(key, KeyState())
            w, f = runner.run(key, ks, keyed)
            writes += w
            carried += f
    return writes
