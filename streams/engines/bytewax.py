"""The Bytewax engine: any projection of the kernel as a Bytewax 0.21 dataflow, batch-first.

    Kafka partitions ─ our source: a batch of up to `batch_size` records per partition per poll,
    │                  decoded into (key, Item) pairs, watermark per partition; dead letters
    │                  written from there, acknowledged before the batch's offsets can be snapshotted
    ├─ per stage: stateful_batch keyed by the item's key (one step call per key per batch); the
    │     entry stage of every input takes the source's stream as it is (no step between)
    │     └─ a forwarding stage's items, re-keyed, into the next stage
    └─ writing stages' results ─ the kernel sink: projection records (flushed), then the Redis
                                 writes with the positions they reflect, in one script call

Bytewax does not keep the order of items between keyed steps (a stage hands on its keys' results
in any order within an epoch), so an item cannot carry the watermark of the moment it was read: a
later one could overtake it. Items carry the watermark *sealed* when every partition had ended an epoch
instead (items of an epoch are all applied before any of a later one), so windows close an epoch
or two later, never early; and the sink records the positions of an epoch's end only in its own
snapshot of that epoch, after writing all of the epoch's items.

Recovery snapshots (every `epoch_interval` s) hold each partition's next offset and each key's
`KeyState`; a restart resumes from the last snapshot and re-runs what came after it. That output
is at least once, made exact by the sinks (version compare-and-set in Redis, record ids that
replays reproduce on the topics). A partition is read from the Redis sink's positions where they
are behind the snapshot (the store lost writes): those records are replayed, not re-applied."""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from shopstream.runtime.dead_letters import DeadLetter, DeadLetterWriter
from shopstream.serde import AvroSerde, RegistryClient
from streams.core import (
    NEVER,
    Item,
    KeyState,
    PartitionClock,
    Projection,
    StageRunner,
    Write,
    parse_partition_name,
    partition_name,
    resume_from,
)
from streams.engines.inputs import Inputs, Unreadable
from streams.pause import PauseFlag
from streams.settings import DataflowSettings
from streams.sinks import Stores, TopicSink

log = logging.getLogger("shopstream.streams")
IDLE_POLL = timedelta(milliseconds=5)  # how long a partition with nothing to read rests
PAUSED_POLL = timedelta(milliseconds=50)  # how long a paused partition rests between looks
KEEP_SEALED = 1_000  # epochs whose sealed positions are kept (a sink idle longer records later)
# sink epochs a pause waits after its positions, for the timers to have acted: a timer's writes
# cross the windows stage and then the sink (3 left, under CI load, a window final on the shadow
# and not yet on the live dataflow)
SETTLED_EPOCHS = 5


@dataclass(slots=True)
class Out:
    """A writing stage's result for one key and batch: its writes."""

    writes: list[Write]
    epoch: int = 0  # the newest epoch of the items behind them


class BytewaxEngine:
    name = "bytewax"

    def __init__(self, projection: Projection, settings: DataflowSettings) -> None:
        self.projection, self.settings = projection, settings
        self.registry = RegistryClient(settings.registry.url)
        self.serde = AvroSerde(self.registry)
        self.inputs = Inputs(projection, self.serde, settings.topic_prefix)
        self.stores = Stores(projection, settings)  # Redis, and Cassandra where the projection writes rows
        self.producer = Producer(
            {"bootstrap.servers": settings.kafka.bootstrap, "enable.idempotence": True, "linger.ms": 5}
        )
        self.topics = TopicSink(self.serde, self._produce, settings.topic_prefix)
        for event in projection.emits:
            self.serde.use(event.subject)
        self.clock = PartitionClock()
        self.caught_up: set[str] = set()  # partitions read to their end (they do not hold the watermark)
        self.sealed_watermark = NEVER  # as of the last epoch every partition has ended
        # the newest epoch whose items every stage has applied: the sink snapshotted it (Timely
        # snapshots an operator at an epoch's end only once every item of it has passed)
        self.applied_epoch = 0
        # epoch → (positions read by its end, the watermark then), the last KEEP_SEALED epochs
        self.sealed: dict[int, tuple[dict[str, int], int]] = {}
        self.epochs: dict[int, dict[str, tuple[int, int, bool]]] = {}  # epoch → partition → its end
        self.partitions = 0  # how many the source has
        self.dlq = DeadLetterWriter(
            settings.kafka.bootstrap, settings.dead_letter(projection.name), client_id=f"bytewax-{projection.name}"
        )
        self.dlq.ensure_topic()  # one partition, as Quix makes it
        self.held = self.stores.progress()  # what the stores reflect, read once at start
        # paused from outside (`streams.pause`): the sources stop reading, and once the stores
        # reflect everything read, the sink says so with the positions
        self.pause = PauseFlag(settings.redis.url, settings.group(projection.name))
        self.read_next: dict[str, int] = {}  # source partition → its next offset (0 before any)
        # (request, when the recorded positions first covered every record read: the sink's
        # epoch and the monotonic time then, or None before that)
        self.paused_since: tuple[str, tuple[int, float] | None] | None = None
        self.flow = self._build()
        self.heartbeat = settings.heartbeat(projection.name)
        self.heartbeat.parent.mkdir(parents=True, exist_ok=True)
        self.beaten = 0.0
        self.failed: str | None = None

    @property
    def dead_letters(self) -> int:
        """Dead letters this process wrote."""
        return self.dlq.written

    def closed(self, partition: str, epoch: int, next_offset: int) -> None:
        """A partition's epoch ended (its snapshot). Once every partition has ended epoch n, what
        was read in epochs up to n is sealed: each partition's position and highest event time at
        its own end of n (not what it read since), and the watermark of those."""
        ends = self.epochs.setdefault(epoch, {})
        ends[partition] = (next_offset, self.clock.highest.get(partition, NEVER), partition in self.caught_up)
        if len(ends) < self.partitions:
            return
        behind = [highest for _, highest, caught in ends.values() if not caught]
        watermark = min(behind) if behind else max((h for _, h, _ in ends.values()), default=NEVER)
        self.sealed_watermark = max(self.sealed_watermark, watermark)
        # every partition, one not read yet at 0: a store holding a position for each can tell
        # which partitions it lost writes of
        self.sealed[epoch] = ({p: max(offset, 0) for p, (offset, _, _) in ends.items()}, self.sealed_watermark)
        for done in [e for e in self.epochs if e <= epoch]:
            del self.epochs[done]
        for old in [e for e in self.sealed if e <= epoch - KEEP_SEALED]:
            del self.sealed[old]

    def reflected(self, epoch: int) -> dict[str, int]:
        """The positions of the newest epoch up to `epoch` that every partition has ended (what
        the sink may record once it has written all items of epochs up to `epoch`)."""
        done = [e for e in self.sealed if e <= epoch]
        return self.sealed[max(done)][0] if done else {}

    def watermark_of(self, epoch: int) -> int:
        """The watermark sealed at the newest epoch up to `epoch` every partition has ended."""
        done = [e for e in self.sealed if e <= epoch]
        return self.sealed[max(done)][1] if done else NEVER

    def beat(self) -> None:
        """Touch the heartbeat file, at most once a second (the stack's probe reads it)."""
        now = time.monotonic()
        if now - self.beaten >= 1.0:
            self.heartbeat.touch()
            self.beaten = now

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed = f"{msg.topic()}: {err}"

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self.producer.poll(0.1)

    # --- the dataflow --------------------------------------------------------------------------
    def _build(self) -> Dataflow:
        flow = Dataflow(self.projection.name)
        # (key, Item) per partition batch; the source writes dead letters itself, acknowledged
        # before the batch's offsets can be in a snapshot
        records = op.input("kafka", flow, _Source(self))
        written: list[Stream[Any]] = []
        forwarded: Stream[Any] | None = None
        stages = self.projection.stages
        everything = frozenset(e.name for e in self.projection.inputs)
        for index, stage in enumerate(stages):
            names = frozenset(e.name for e in self.projection.inputs if self.projection.entry(e.name) == index)

            def entering(xs: list[Any], names: frozenset[str] = names) -> list[tuple[str, Item[Any]]]:
                return [x for x in xs if x[1].value.envelope.event_type in names]

            if names == everything:  # every input enters here: no step between the source and it
                keyed = records
            elif names:
                keyed = op.flat_map_batch(f"{stage.name}-in", records, entering)  # (key, Item)
            else:
                keyed = None
            if forwarded is not None:
                keyed = forwarded if keyed is None else op.merge(f"{stage.name}-merge", keyed, forwarded)
            assert keyed is not None, f"stage {stage.name} has no input"
            # Bytewax hands a key its items in order only from the source: later stages see
            # replays as Refresh items, never again as the items themselves
            runner = StageRunner(stage, dedupe=index == 0 or bool(names))
            results = op.stateful_batch(stage.name, keyed, _builder(runner, self))  # (key, Out | list[Item])
            if stage.forwards:
                forwarded = op.flat_map_batch(
                    f"{stage.name}-forward", results, lambda xs: [(i.key, i) for _, items in xs for i in items]
                )  # (next key, Item)
            else:
                forwarded = None
                written.append(results)
        # one empty Out per epoch straight to the sink: Bytewax snapshots a sink only in epochs it
        # had items, and its snapshot is where it records the positions it reflects — without
        # these, records that make no writes (order.fulfilled for revenue_windows) read last left
        # their positions unrecorded while no more came
        epochs = op.input("epochs", flow, _EpochSource(self))
        merged = op.merge("written", *written, epochs)
        op.output("sinks", merged, _KernelSink(self))  # (key, Out)
        return flow

    def run(self) -> None:
        directory = self.settings.recovery_dir(self.projection.name)
        if not directory.exists() or not any(directory.iterdir()):
            directory.mkdir(parents=True, exist_ok=True)
            init_db_dir(directory, 1)  # type: ignore[no-untyped-call]
        try:
            cli_main(  # type: ignore[no-untyped-call]
                self.flow,
                workers_per_process=1,
                epoch_interval=timedelta(seconds=self.settings.epoch_interval),
                recovery_config=RecoveryConfig(str(directory)),  # type: ignore[no-untyped-call]
            )
        finally:
            self.close()

    def close(self) -> None:
        self.producer.flush(30)
        self.stores.close()
        self.registry.close()
        self.pause.close()

    def answer_pause(self, positions: dict[str, int]) -> None:
        """Paused, `positions` (recorded in the stores) cover every record the sources read, and
        the timers have acted on the watermark as of when reading stopped (a timer uses the
        watermark of the newest epoch the sink has ended; its writes reach the sink an epoch or
        two later): say so (`streams.pause`) once the sink has ended SETTLED_EPOCHS more epochs
        and as many timer ticks have passed. Nothing is written after that while paused."""
        request = self.pause.requested()
        if request is None:
            self.paused_since = None
            return
        if self.paused_since is None or self.paused_since[0] != request:
            self.paused_since = (request, None)
        if not positions or len(self.read_next) < self.partitions:
            return
        if any(positions.get(p) != n for p, n in self.read_next.items()):
            self.paused_since = (request, None)  # still reading what was fetched before the pause
            return
        covered = self.paused_since[1]
        if covered is None:
            self.paused_since = (request, (self.applied_epoch, time.monotonic()))
            return
        settled = self.applied_epoch >= covered[0] + SETTLED_EPOCHS
        if settled and time.monotonic() - covered[1] >= SETTLED_EPOCHS * self.settings.epoch_interval:
            self.pause.acknowledge(request, positions, ticks=True)  # its windows turn final on timers


def _builder(runner: StageRunner[Any, Any], engine: BytewaxEngine) -> Any:
    stage = runner.stage
    tick = timedelta(seconds=engine.settings.epoch_interval)

    class Logic(StatefulBatchLogic[Item[Any], Any, bytes]):
        def __init__(self, resume: bytes | None) -> None:
            self.key: str | None = None
            self.epoch = 0  # the newest epoch of the items this key has taken
            self.ks: KeyState[Any] = KeyState()
            if resume is not None:
                snapshot = pickle.loads(resume)
                if isinstance(snapshot, tuple):  # (key, state); a bare state before the key was kept
                    self.key, snapshot = snapshot
                self.ks = KeyState.load(stage, snapshot)

        def notify_at(self) -> datetime | None:
            # a stage that acts on the watermark alone (windows turning final) looks at it again
            # every epoch, also when no item of its key comes
            return datetime.now(UTC) + tick if stage.ticks and self.key is not None else None

        def on_notify(self) -> tuple[Iterable[Any], bool]:
            assert self.key is not None
            # the watermark of an epoch all of whose items this key has taken: one before the
            # newest it has seen (items of a later epoch arrived, so every earlier one did), or
            # the newest the sink has ended (every stage has applied its items). Not "a few
            # epochs behind the sources": under load a stage lags the sources by more than that,
            # and an item still on its way would then be late (a cancellation dropped).
            epoch = max(self.epoch - 1, engine.applied_epoch)
            writes = runner.advance(self.key, self.ks, engine.watermark_of(epoch))
            return ([Out(writes, epoch)] if writes else []), False

        def on_batch(self, values: list[Item[Any]]) -> tuple[Iterable[Any], bool]:
            self.key = values[0].key
            self.epoch = max(self.epoch, max(item.epoch for item in values))
            writes, forward = runner.run(self.key, self.ks, values)
            discard = self.ks.state is None
            if stage.forwards:
                return ([forward] if forward else []), discard
            return [Out(writes, self.epoch)], discard

        def snapshot(self) -> bytes:
            return pickle.dumps((self.key, self.ks.dump(stage)), protocol=pickle.HIGHEST_PROTOCOL)  # a copy

    return Logic


class _Source(FixedPartitionedSource[Any, int]):
    """Every partition of the projection's input topics, one consumer each (as Bytewax's own
    KafkaSource), decoded into Items here: one pass over a batch."""

    def __init__(self, engine: BytewaxEngine) -> None:
        self.engine = engine

    def list_parts(self) -> list[str]:
        admin = AdminClient({"bootstrap.servers": self.engine.settings.kafka.bootstrap})
        metadata = admin.list_topics(timeout=30)
        parts = []
        for topic in self.engine.inputs.topics:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                raise RuntimeError(f"input topic {topic} does not exist (shopstream up creates the event topics)")
            parts += [partition_name(topic, p) for p in sorted(found.partitions)]
        self.engine.partitions = len(parts)
        self.engine.clock.assign(parts)
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        engine = self.engine
        start = resume_from(for_part, resume_state, engine.held)
        if start is not None:
            log.warning(
                "%s: the store holds %s up to offset %d, the snapshot %d: replaying the difference",
                engine.projection.name,
                for_part,
                start,
                resume_state,
                extra={"dataflow": engine.projection.name},
            )
        else:
            start = resume_state
        partition = _Partition(engine, for_part, start)
        return partition


class _Partition(StatefulSourcePartition[Any, int]):
    def __init__(self, engine: BytewaxEngine, name: str, start: int | None) -> None:
        self.engine, self.name = engine, name
        self.topic, self.partition = parse_partition_name(name)
        self.next = OFFSET_BEGINNING if start is None else start
        self.consumer = Consumer(
            {
                "bootstrap.servers": engine.settings.kafka.bootstrap,
                "group.id": engine.settings.group(engine.projection.name),  # never joined: assigned
                "enable.auto.commit": False,
                "auto.offset.reset": engine.settings.auto_offset_reset,
                "isolation.level": "read_committed",
            }
        )
        self.consumer.assign([TopicPartition(self.topic, self.partition, self.next)])
        self.tp = TopicPartition(self.topic, self.partition)
        self.awake: datetime | None = None
        self.epoch = 0  # how many snapshots (epoch ends) this partition has had

    def next_batch(self) -> list[Any]:
        self.engine.beat()
        if self.engine.pause.requested() is not None:  # paused from outside: read nothing
            self.engine.read_next[self.name] = max(self.next, 0)
            self.awake = datetime.now(UTC) + PAUSED_POLL
            return []
        msgs = self.consumer.consume(self.engine.settings.batch_size, 0)
        if msgs:
            self.next = msgs[-1].offset() + 1
        self.engine.read_next[self.name] = max(self.next, 0)
        # read to the end of what the broker had when it last answered: it holds no watermark back
        low, high = self.consumer.get_watermark_offsets(self.tp, cached=True)
        if (self.next >= 0 and 0 <= high <= self.next) or (self.next < 0 and 0 <= high <= low):
            self.engine.caught_up.add(self.name)
        else:
            self.engine.caught_up.discard(self.name)
        if not msgs:
            self.awake = datetime.now(UTC) + IDLE_POLL
            return []
        self.awake = None
        engine, inputs, clock, name = self.engine, self.engine.inputs, self.engine.clock, self.name
        letters: list[DeadLetter] = []
        decoded = []
        event_of, topic = inputs.event, self.topic
        highest = clock.highest.get(name, NEVER)
        for msg in msgs:
            error = msg.error()
            if error is not None:
                raise RuntimeError(f"consuming {name}: {error}")
            try:
                event = event_of(topic, msg.value(), msg.key())
            except Unreadable as exc:
                origin, headers = (topic, self.partition, msg.offset()), msg.headers() or []
                letters.append(
                    DeadLetter(engine.projection.name, str(exc), msg.value(), msg.key(), origin, headers=headers)
                )
                continue
            at = event.envelope.occurred_at
            if at > highest:
                highest = at
            decoded.append((event, msg.offset()))
        engine.dlq.write(letters)  # acknowledged before this batch's next offset can be snapshotted
        clock.observe(name, highest)
        clock.watermark(engine.caught_up)
        watermark, epoch = engine.sealed_watermark, self.epoch + 1  # read in the epoch after its last end
        item = inputs.item
        return [(e.envelope.partition_key, item(e, name, offset, watermark, epoch)) for e, offset in decoded]

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> int:
        self.epoch += 1  # this partition's epoch ends (each partition ends it on its own)
        self.engine.closed(self.name, self.epoch, self.next)
        return self.next

    def close(self) -> None:
        self.consumer.close()


class _EpochSource(FixedPartitionedSource[tuple[str, Out], None]):
    """One item per epoch for the sink (an empty Out of that epoch)."""

    def __init__(self, engine: BytewaxEngine) -> None:
        self.engine = engine

    def list_parts(self) -> list[str]:
        return ["epochs"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _EpochPartition:
        return _EpochPartition(timedelta(seconds=self.engine.settings.epoch_interval) / 4)


class _EpochPartition(StatefulSourcePartition[tuple[str, Out], None]):
    def __init__(self, rest: timedelta) -> None:
        self.rest = rest
        self.epoch = 0  # snapshots so far: the epoch numbering of the input partitions
        self.sent = 0  # the epoch of the last item sent
        self.awake = datetime.now(UTC)

    def next_batch(self) -> list[tuple[str, Out]]:
        self.awake = datetime.now(UTC) + self.rest
        if self.sent > self.epoch:
            return []
        self.sent = self.epoch + 1  # items read now are in the epoch after the last end
        return [("", Out([], self.sent))]

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> None:
        self.epoch += 1
        return None


class _KernelSink(FixedPartitionedSink[Out, None]):
    """One partition: the writes as they come, and at each epoch's end the positions whose items
    it has all written (a stateful sink's snapshot comes after its epoch's items)."""

    def __init__(self, engine: BytewaxEngine) -> None:
        self.engine = engine

    def list_parts(self) -> list[str]:
        return ["stores"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _KernelSinkPartition:
        return _KernelSinkPartition(self.engine)


class _KernelSinkPartition(StatefulSinkPartition[Out, None]):
    def __init__(self, engine: BytewaxEngine) -> None:
        self.engine = engine
        self.epoch = 0  # the newest epoch of what it wrote
        self.recorded: dict[str, int] = {}

    def write_batch(self, values: list[Out]) -> None:
        writes = [w for out in values for w in out.writes]
        self.epoch = max(self.epoch, max((out.epoch for out in values), default=0))
        engine = self.engine
        if engine.topics.apply(writes, {}):
            _flush(engine)
        engine.stores.apply(writes, {})

    def snapshot(self) -> None:
        # Bytewax snapshots a sink only in epochs it had items (each epoch has one, `_EpochSource`):
        # the epoch is the items' own
        self.engine.applied_epoch = max(self.engine.applied_epoch, self.epoch)
        positions = self.engine.reflected(self.epoch)
        if positions and positions != self.recorded:
            self.engine.stores.apply([], positions)  # the records it wrote are flushed already
            self.recorded = positions
        self.engine.answer_pause(self.recorded)


def _flush(engine: BytewaxEngine) -> None:
    if engine.producer.flush(30) > 0:
        raise RuntimeError("Kafka did not acknowledge the projection records within 30 s")
    if engine.failed is not None:
        raise RuntimeError(f"Kafka refused a record: {engine.failed}")
