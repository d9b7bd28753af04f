"""The Quix Streams engine: any projection of the kernel as a Quix application, exactly-once
(state changelogs, offsets, projection records and dead letters in one Kafka transaction per
checkpoint, 0.1 s by default).

Quix hands over one record at a time, so each stage runs with a batch of one; its per-key state
(`KeyState`: the stage's state and the positions applied) lives in Quix's RocksDB state. Stages
are chained by a repartition topic (`group_by`), whose records are JSON (`_ItemSerializer`).
The kernel sink runs at each checkpoint, before the commit: projection records are produced into
the transaction, and the store writes go to Redis with the positions they reflect. When a
partition is assigned, it is read from the Redis sink's positions where they are behind the
group's committed offsets (the store lost writes): those records are replayed, not re-applied."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition
from quixstreams import Application, State, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models.serializers import Deserializer, SerializationContext, Serializer
from quixstreams.sinks import BatchingSink, SinkBatch

from shopstream.domain.revenue import RevenueDelta
from shopstream.runtime.dead_letters import DeadLetter
from shopstream.serde import AvroSerde, RegistryClient
from streams.core import (
    Item,
    KeyState,
    PartitionClock,
    Position,
    Projection,
    Refresh,
    StageRunner,
    Tick,
    Write,
    partition_name,
    resume_from,
)
from streams.engines.inputs import Inputs, Unreadable
from streams.pause import PauseFlag
from streams.settings import DataflowSettings
from streams.sinks import Stores, TopicSink

log = logging.getLogger("shopstream.streams")
STATE_KEY = "k"
PAUSE_QUIET_S = 1.0  # paused: how long nothing may arrive (from the repartition topic) before it answers
# the value types stages forward to the next one (JSON on the repartition topic): name → class
FORWARDED: dict[str, type[Any]] = {"RevenueDelta": RevenueDelta, "Refresh": Refresh, "Tick": Tick}


@dataclass
class Out:
    """A stage's result for one record, as it travels to the sink and the next stage."""

    writes: list[Write]
    forward: list[Item[Any]] = field(default_factory=list)


class QuixEngine:
    name = "quix"

    def __init__(self, projection: Projection, settings: DataflowSettings) -> None:
        self.projection, self.settings = projection, settings
        self.group = settings.group(projection.name)
        self.registry = RegistryClient(settings.registry.url)
        self.serde = AvroSerde(self.registry)
        self.inputs = Inputs(projection, self.serde, settings.topic_prefix)
        self.stores = Stores(projection, settings)  # Redis, and Cassandra where the projection writes rows
        self.clock = PartitionClock()
        self.caught_up: set[str] = set()  # input partitions read to their end
        self.caught_up_at = 0
        self.reading: list[TopicPartition] = []  # the input partitions assigned
        self.starts: dict[str, int] = {}  # where each was assigned to be read from
        self.app = _Application(
            self,
            broker_address=settings.kafka.bootstrap,
            consumer_group=self.group,
            processing_guarantee="exactly-once" if settings.exactly_once else "at-least-once",
            commit_interval=settings.commit_interval,
            consumer_poll_timeout=settings.poll_timeout,
            auto_offset_reset=settings.auto_offset_reset,
            state_dir=str(settings.state_dir),
            use_changelog_topics=settings.changelog_topics,
            loglevel=settings.log_level,
        )
        self.dlq = self.app.topic(settings.dead_letter(projection.name), value_serializer="bytes")
        self.dead_letters = 0
        self.pause = PauseFlag(settings.redis.url, self.group)  # paused from outside (`streams.pause`)
        # no timers: a later stage learns of the watermark from items only, so forward it (`Tick`)
        self.runners = [StageRunner(stage, forward_watermarks=True) for stage in projection.stages]
        self.topics = TopicSink(self.serde, self._produce, settings.topic_prefix)
        for event in projection.emits:
            self.serde.use(event.subject)
        self._build()
        # Quix's partition time alignment holds records back until every partition has one
        # buffered; our watermark is the kernel's (per partition), so it is not needed
        if not settings.time_alignment:
            self.app._dataframe_registry._requires_time_alignment = False  # no public switch in 3.28

    # --- the pipeline ------------------------------------------------------------------------
    def _build(self) -> None:
        forwarded: StreamingDataFrame | None = None
        for index, stage in enumerate(self.projection.stages):
            sdf = forwarded
            for event in self.projection.inputs:
                if self.projection.entry(event.name) == index:
                    source = self._source(self.settings.topic_prefix + event.topic)  # Item(typed event)
                    sdf = source if sdf is None else sdf.concat(source)
            assert sdf is not None, f"stage {stage.name} has no input"
            out = sdf.apply(self._stepper(index), stateful=True)  # Out(writes, forward)
            if not stage.forwards:
                out.sink(_KernelSink(self))  # the writes, at each checkpoint
            else:
                items = out.apply(lambda o: o.forward, expand=True)  # Item per forwarded value
                forwarded = items.group_by(
                    lambda item: item.key,
                    name=self.projection.stages[index + 1].name,
                    value_serializer=_ItemSerializer(),
                    value_deserializer=_ItemDeserializer(),
                )  # the same items, keyed for the next stage

    def _source(self, topic_name: str) -> StreamingDataFrame:
        # keys as bytes: a key that is not UTF-8 must reach the dead-letter topic, not crash Quix
        topic = self.app.topic(topic_name, value_deserializer="bytes", key_deserializer="bytes")
        sdf = self.app.dataframe(topic)
        producer = sdf.processing_context.producer
        inputs, clock = self.inputs, self.clock

        def decode(raw: bytes | None, key: Any, timestamp: int, headers: Any) -> Item[Any] | None:
            ctx = message_context()
            try:
                event = inputs.event(topic_name, raw, key)
            except Unreadable as exc:
                self._dead_letter(producer, topic_name, ctx.partition, ctx.offset, raw, key, headers, str(exc))
                return None
            name = partition_name(topic_name, ctx.partition)
            now = time.monotonic_ns() // 1_000_000
            clock.observe(name, event.envelope.occurred_at)
            # the last record of its partition (as far as the consumer knows): look again now,
            # or the watermark could stay where it was until the next record
            _, high = self.app._consumer.get_watermark_offsets(TopicPartition(topic_name, ctx.partition), cached=True)
            if ctx.offset + 1 >= high:
                self.caught_up_at = 0
            return inputs.item(event, name, ctx.offset, clock.watermark(self._caught_up(now)))

        return sdf.apply(decode, metadata=True).filter(lambda v: v is not None)

    def _caught_up(self, now: int) -> set[str]:
        """The input partitions read to their end (by the consumer's position against the high
        watermark of its last fetch); looked at every 50 ms at most."""
        if now - self.caught_up_at >= 50 and self.reading:
            consumer = self.app._consumer
            positions = consumer.position(self.reading)
            done = set()
            for tp in positions:
                name = partition_name(tp.topic, tp.partition)
                low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
                # nothing read since the assignment: it is read from where it was assigned at (the
                # committed offset), or from its start (then it counts only when empty)
                at = tp.offset if tp.offset >= 0 else self.starts.get(name, low)
                if 0 <= high <= at:
                    done.add(name)
            self.caught_up, self.caught_up_at = done, now
        return self.caught_up

    def _stepper(self, index: int) -> Callable[[Item[Any], State[str, Any]], Out]:
        runner = self.runners[index]
        stage = runner.stage

        def step(item: Item[Any], state: State[str, Any]) -> Out:
            stored = state.get(STATE_KEY)
            ks = KeyState() if stored is None else KeyState.load(stage, stored)
            writes, forward = runner.run(item.key, ks, (item,))
            if ks.state is None:
                state.delete(STATE_KEY)
            else:
                state.set(STATE_KEY, ks.dump(stage))
            return Out(writes, forward)

        return step

    def _dead_letter(
        self, producer: Any, topic: str, partition: int, offset: int, raw: Any, key: Any, headers: Any, reason: str
    ) -> None:
        """The record as it came, with why and from where, in the same transaction."""
        letter = DeadLetter(self.projection.name, reason, raw, key, (topic, partition, offset), headers=headers or [])
        producer.produce(topic=self.dlq.name, value=raw, key=key, headers=letter.kafka_headers())
        self.dead_letters += 1
        letter.log()

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.app._producer.produce(topic=topic, key=key, value=value)  # in the checkpoint's transaction

    # --- assignment: resume from the store where it is behind --------------------------------
    def assigned(self, partitions: list[TopicPartition]) -> None:
        inputs = set(self.inputs.topics)
        mine = [TopicPartition(tp.topic, tp.partition) for tp in partitions if tp.topic in inputs]
        self.clock.assign([partition_name(tp.topic, tp.partition) for tp in mine])
        self.reading += mine
        consumer = self.app._consumer
        data = [tp for tp in partitions if not tp.topic.startswith("changelog__")]
        committed = consumer.committed([TopicPartition(tp.topic, tp.partition) for tp in data], timeout=30)
        held = self.stores.progress()
        for tp, c in zip(data, committed, strict=True):
            name = partition_name(tp.topic, tp.partition)
            if c.offset >= 0:
                self.starts[name] = c.offset
            start = resume_from(name, c.offset if c.offset >= 0 else None, held)
            if start is not None:
                log.warning(
                    "%s: the store holds %s up to offset %d, the group committed %d: replaying the difference",
                    self.projection.name,
                    name,
                    start,
                    c.offset,
                    extra={"dataflow": self.projection.name, "topic": tp.topic},
                )
                tp.offset = self.starts[name] = start

    def revoked(self, partitions: list[TopicPartition]) -> None:
        names = [partition_name(tp.topic, tp.partition) for tp in partitions]
        self.clock.revoke(names)
        self.reading = [tp for tp in self.reading if partition_name(tp.topic, tp.partition) not in names]
        self.stores.forget(names)

    def run(self) -> None:
        try:
            self.app.run()
        finally:
            self.close()

    def close(self) -> None:
        self.stores.close()
        self.registry.close()
        self.pause.close()


class _Application(Application):
    """Quix's application, told about assignments first (to set where partitions are read)."""

    def __init__(self, engine: QuixEngine, **kwargs: Any) -> None:
        self._engine = engine
        self._paused_inputs: list[TopicPartition] = []
        self._quiet_since = time.monotonic()
        super().__init__(**kwargs)

    def _process_message(self, dataframe_composed: Any) -> None:
        """Paused from outside (`streams.pause`): the input partitions are paused; what the
        first stage forwarded (the repartition topic) is still read, and once nothing has come for
        a while and the checkpoint holds nothing uncommitted, the inputs' committed offsets are
        what the stores reflect."""
        engine, consumer = self._engine, self._consumer
        request = engine.pause.requested()
        if request is None:
            if self._paused_inputs:
                consumer.resume(self._paused_inputs)
                self._paused_inputs = []
            super()._process_message(dataframe_composed)  # type: ignore[no-untyped-call]
            return
        inputs = set(engine.inputs.topics)
        held = {(tp.topic, tp.partition) for tp in self._paused_inputs}
        more = [tp for tp in consumer.assignment() if tp.topic in inputs and (tp.topic, tp.partition) not in held]
        if more:
            consumer.pause(more)
            self._paused_inputs += more
            self._quiet_since = time.monotonic()
        super()._process_message(dataframe_composed)  # type: ignore[no-untyped-call]
        checkpoint = self._processing_context.checkpoint
        if not checkpoint.empty():
            self._quiet_since = time.monotonic()
            return
        if time.monotonic() - self._quiet_since < PAUSE_QUIET_S:
            return
        committed = consumer.committed(self._paused_inputs, timeout=10)
        positions = {partition_name(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
        engine.pause.acknowledge(request, positions, ticks=False)  # no timers: windows turn final on records

    def _on_assign(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        if topic_partitions:
            self._engine.assigned(topic_partitions)
        super()._on_assign(consumer, topic_partitions)

    def _on_revoke(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        super()._on_revoke(consumer, topic_partitions)
        self._engine.revoked(topic_partitions)

    def _on_lost(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        super()._on_lost(consumer, topic_partitions)
        self._engine.revoked(topic_partitions)


class _KernelSink(BatchingSink):
    """At each checkpoint: the batch's projection records into the transaction, then its store
    writes with the positions they reflect (next offset of the batch's partition)."""

    def __init__(self, engine: QuixEngine) -> None:
        super().__init__()
        self.engine = engine

    def write(self, batch: SinkBatch) -> None:
        writes = [w for item in batch for w in item.value.writes]
        progress = {partition_name(batch.topic, batch.partition): max(item.offset for item in batch) + 1}
        self.engine.topics.apply(writes, progress)
        self.engine.stores.apply(writes, progress)


class _ItemSerializer(Serializer):
    def __call__(self, item: Item[Any], ctx: SerializationContext) -> bytes:
        import json

        value = item.value
        return json.dumps(
            [
                item.key,
                type(value).__name__,
                _fields(value),
                item.at.partition,
                item.at.offset,
                item.at.sub,
                item.event_time,
                item.watermark,
                item.trace_id,
                item.correlation_id,
            ],  # fmt: skip
            separators=(",", ":"),
        ).encode()


class _ItemDeserializer(Deserializer):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def __call__(self, value: bytes, ctx: SerializationContext) -> Item[Any]:
        import json

        key, kind, fields, partition, offset, sub, at, watermark, trace, correlation = json.loads(value)
        return Item(key, FORWARDED[kind](**fields), Position(partition, offset, sub), at, watermark, trace, correlation)


def _fields(value: Any) -> dict[str, Any]:
    if hasattr(value, "__dict__"):
        return dict(vars(value))
    return {name: getattr(value, name) for name in getattr(value, "__slots__", ())}
