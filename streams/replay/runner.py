"""The replay engine: one process reads a projection's input partitions straight from the log
(assigned, no consumer group) between two offset vectors, runs the kernel's stages over them in
memory (`streams.core.run_batch`, the same rules the live engines run) and writes into the shadow
targets (`streams.replay.targets`), never anything outward-facing (the projection's declared side
effects are withheld, `streams.core.without_side_effects`).

It checkpoints every few seconds — every key's state, the watermark clock and the next offset of
every partition, in one file replaced atomically — only after the sinks have acknowledged the
writes of what it covers. A replay killed at any point continues from its last checkpoint: the
records after it are stepped again from the state as of it (so nothing is counted twice) and
their writes carry the versions they carried before (so the sinks keep what they have)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import Consumer, TopicPartition

from shopstream.serde import AvroSerde, RegistryClient
from streams.core import (
    NEVER,
    Item,
    KeyState,
    PartitionClock,
    Position,
    Projection,
    StageRunner,
    Write,
    parse_partition_name,
    partition_name,
    run_batch,
    without_side_effects,
)
from streams.engines.inputs import Inputs, Unreadable
from streams.replay.targets import Shadow
from streams.settings import DataflowSettings

log = logging.getLogger("shopstream.replay")
BATCH = 20_000  # records per kernel batch: writes coalesce per batch, so a big one writes less


def consumer(settings: DataflowSettings, **extra: Any) -> Consumer:
    """A consumer of committed records only, in no group (partitions are assigned)."""
    return Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": "shopstream-replay",  # needed by the client; nothing is committed
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            "queued.min.messages": 200_000,
            **extra,
        }
    )


def input_partitions(c: Consumer, topics: list[str]) -> list[tuple[str, int]]:
    out = []
    metadata = c.list_topics(timeout=10).topics
    for topic in topics:
        found = metadata.get(topic)
        if found is None or found.error is not None:
            raise ValueError(f"no topic {topic} in Kafka")
        out += [(topic, p) for p in sorted(found.partitions)]
    return out


def end_offsets(c: Consumer, topics: list[str]) -> dict[str, int]:
    """Each input partition's end as a committed reader sees it now: the offset vector a replay
    reads up to."""
    ends = {}
    for topic, p in input_partitions(c, topics):
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        ends[partition_name(topic, p)] = int(high)
    return ends


def start_offsets(c: Consumer, topics: list[str], since_ms: int | None = None) -> dict[str, int]:
    """Each input partition's first offset (retained), or its first at or after `since_ms`."""
    starts = {}
    parts = input_partitions(c, topics)
    if since_ms is not None:
        found = c.offsets_for_times([TopicPartition(t, p, since_ms) for t, p in parts], timeout=10)
        for tp in found:
            if tp.offset < 0:  # nothing at or after the instant: start at the end
                _, high = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
                starts[partition_name(tp.topic, tp.partition)] = int(high)
            else:
                starts[partition_name(tp.topic, tp.partition)] = int(tp.offset)
        return starts
    for topic, p in parts:
        low, _ = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        starts[partition_name(topic, p)] = int(low)
    return starts


class Checkpoint(msgspec.Struct):
    next: dict[str, int]  # partition → next offset to read
    highest: dict[str, int]  # the watermark clock
    watermark: int
    states: list[list[tuple[str, Any]]]  # per stage: (key, KeyState.dump)
    stats: dict[str, int] = msgspec.field(default_factory=dict)


@dataclass
class Stats:
    read: int = 0  # records read
    events: int = 0  # records stepped
    dead: int = 0  # records no stage can take (the live dataflow dead-lettered them already)
    writes: int = 0  # writes applied (coalesced per batch)
    withheld: int = 0  # side effects not made again
    seeded: int = 0  # rows of a re-seed stepped (`seed`)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "events": self.events,
            "deadLetters": self.dead,
            "writes": self.writes,
            "withheld": self.withheld,
            "seeded": self.seeded,
            "cpuSeconds": round(self.cpu_s, 3),
            "wallSeconds": round(self.wall_s, 3),
        }


Progress = Callable[[int], None]  # records read since the last call


class ReplayRun:
    """The in-memory state of one replay, its checkpoint file and its shadow sinks."""

    def __init__(
        self, projection: Projection, settings: DataflowSettings, shadow: Shadow | None, checkpoint: Path | None
    ) -> None:
        self.projection, self.settings, self.shadow = projection, settings, shadow
        self.path = checkpoint
        self.runners = [StageRunner(stage) for stage in projection.stages]
        self.states: list[dict[str, KeyState[Any]]] = [{} for _ in projection.stages]
        self.clock = PartitionClock()
        self.next: dict[str, int] = {}
        self.stats = Stats()
        self.registry = RegistryClient(settings.registry.url)
        self.inputs = Inputs(projection, AvroSerde(self.registry), settings.topic_prefix)
        self.sinks: list[Any] = []
        if checkpoint is not None and checkpoint.exists():
            self._load(checkpoint)

    # --- the stores ------------------------------------------------------------------------------
    def open_sinks(self) -> None:
        """The shadow's sinks: Redis always (the positions), Cassandra and OpenSearch where the
        projection writes them."""
        assert self.shadow is not None
        from streams.sinks.redis import RedisSink

        group = self.shadow.progress_group
        self.sinks = [RedisSink(self.settings.redis.url, f"streams:progress:{group}")]
        wanted = set(self.projection.stores) & set(self.settings.stores)
        if "cassandra" in wanted:
            from streams.sinks.cassandra import CassandraSink

            self.sinks.append(CassandraSink(self.settings.cassandra, group, tables=self.shadow.tables))
        if "opensearch" in wanted:
            from streams.sinks.opensearch import OpenSearchSink

            self.sinks.append(OpenSearchSink(self.settings.opensearch, group))

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []
        self.registry.close()

    # --- reading ---------------------------------------------------------------------------------
    def run(
        self,
        start: Mapping[str, int],
        until: Mapping[str, int],
        progress: Progress | None = None,
        ends: Mapping[str, int] | None = None,
        close_windows: bool = False,
    ) -> Stats:
        """Read every partition from where this replay is (its checkpoint, else `start`) up to
        `until` (exclusive), writing to the shadow, and checkpoint. A partition read to `until`
        counts as caught up (it holds no watermark back) where `until` is its end (`ends`, as the
        live engine saw it; by default `until` is the end). `close_windows`: then act on the
        final watermark alone (windows turning final), as a live engine with timers does while
        it waits for more (Bytewax; Quix acts on it only when a record comes)."""
        ends = until if ends is None else ends
        for p, offset in start.items():
            self.next.setdefault(p, offset)
        self.clock.assign(until)
        todo = {p: end for p, end in until.items() if self.next.get(p, 0) < end}
        c = consumer(self.settings)
        cpu0, wall0 = time.process_time(), time.monotonic()
        last_checkpoint = time.monotonic()
        try:
            if todo:
                assignment = []
                for p in todo:
                    topic, n = parse_partition_name(p)
                    assignment.append(TopicPartition(topic, n, self.next[p]))
                c.assign(assignment)
            # read to its end (the end the live engine sees): it holds no watermark back
            caught_up = {p for p in until if p not in todo and until[p] >= ends.get(p, 0)}
            clock, inputs = self.clock, self.inputs
            while todo:
                left = sum(end - self.next.get(p, 0) for p, end in todo.items())
                messages = c.consume(num_messages=max(1, min(BATCH, left)), timeout=1.0)
                items: list[Item[Any]] = []
                read: dict[str, int] = {}
                for msg, p, offset, end in _to_read(messages, todo):
                    if offset >= end:  # past the vector: everything below it was delivered
                        read[p] = end
                        continue
                    read[p] = offset + 1
                    self.stats.read += 1
                    try:
                        event = inputs.event(msg.topic(), msg.value(), msg.key())
                    except Unreadable:
                        self.stats.dead += 1
                        continue
                    # the watermark as of just after the record (as Quix stamps it; Bytewax's
                    # is older, which only delays when windows turn final, never what they hold)
                    clock.observe(p, event.envelope.occurred_at)
                    if offset + 1 >= end and end >= ends.get(p, 0):
                        caught_up.add(p)
                    items.append(inputs.item(event, p, offset, clock.watermark(caught_up)))
                _stand(c, todo, read)
                self.next.update({p: max(self.next.get(p, 0), o) for p, o in read.items()})
                self._apply(run_batch(self.projection, self.runners, self.states, items), read)
                self.stats.events += len(items)
                done = [p for p, end in todo.items() if self.next.get(p, 0) >= end]
                for p in done:
                    del todo[p]
                    if until[p] >= ends.get(p, 0):
                        caught_up.add(p)
                if done:
                    c.pause([TopicPartition(*parse_partition_name(p)) for p in done])
                if progress is not None and read:
                    progress(len(messages))
                if time.monotonic() - last_checkpoint > self.settings.replay_checkpoint_interval:
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
            if close_windows:
                self._close_windows(until, caught_up)
            self.checkpoint()
        finally:
            c.close()
            self.stats.cpu_s += time.process_time() - cpu0
            self.stats.wall_s += time.monotonic() - wall0
        return self.stats

    def seed(self, start: Mapping[str, int], until: Mapping[str, int], progress: Progress | None = None) -> Stats:
        """Step the re-seed's CDC records (`streams.replay.reseed`) from where this replay is in
        them (its checkpoint, else `start`) up to `until`: each row, made its first stage's input
        by the projection's rule (`Projection.seeds`), before any of the log. Their positions are
        the replay's own (its checkpoint): the live dataflow reads no CDC topic, so none reaches
        the stores' recorded positions."""
        from streams.replay import reseed

        for p, offset in start.items():
            self.next.setdefault(p, offset)
        todo = {p: end for p, end in until.items() if self.next.get(p, 0) < end}
        if not todo:
            return self.stats
        seeds = self.projection.seeds
        c = consumer(self.settings)
        cpu0, wall0 = time.process_time(), time.monotonic()
        try:
            c.assign([TopicPartition(*parse_partition_name(p), self.next[p]) for p in todo])
            while todo:
                messages = c.consume(num_messages=BATCH, timeout=1.0)
                items: list[Item[Any]] = []
                read: dict[str, int] = {}
                for msg, p, offset, end in _to_read(messages, todo):
                    if offset >= end:
                        continue
                    read[p] = offset + 1
                    self.stats.read += 1
                    change = reseed.decode(msg.topic(), msg.value())
                    event = None
                    if change is not None and change.row is not None and change.op != "d":
                        event = seeds[change.table](change.row, change.changed_at)
                    if event is None:
                        continue
                    self.stats.seeded += 1
                    e = event.envelope
                    at = Position(p, offset)
                    items.append(
                        Item(
                            e.partition_key, event, at, e.occurred_at, self.clock.current, e.trace_id, e.correlation_id
                        )
                    )
                _stand(c, todo, read)
                self.next.update({p: max(self.next.get(p, 0), o) for p, o in read.items()})
                self._apply(run_batch(self.projection, self.runners, self.states, items), {})
                self.stats.events += len(items)
                for p in [p for p, end in todo.items() if self.next.get(p, 0) >= end]:
                    del todo[p]
                if progress is not None and read:
                    progress(len(messages))
            self.checkpoint()
        finally:
            c.close()
            self.stats.cpu_s += time.process_time() - cpu0
            self.stats.wall_s += time.monotonic() - wall0
        return self.stats

    def _close_windows(self, until: Mapping[str, int], caught_up: set[str]) -> None:
        """Every partition read to the vector: the stages that act on the watermark alone
        (windows turning final) do so, as a live engine does while it waits for more."""
        watermark = self.clock.watermark(caught_up)
        if watermark == NEVER:
            return
        writes: list[Write] = []
        for runner, states in zip(self.runners, self.states, strict=True):
            if runner.stage.ticks:
                for key, ks in states.items():
                    writes += runner.advance(key, ks, watermark)
        self._apply(writes, {p: self.next[p] for p in until if p in self.next})

    def _apply(self, writes: list[Write], positions: Mapping[str, int]) -> None:
        kept, withheld = without_side_effects(self.projection, writes)
        self.stats.withheld += withheld
        if self.shadow is None:  # an in-memory run (explain, plan's rate sample)
            return
        shadowed = self.shadow.retarget(kept)
        progress = {p: positions[p] for p in positions}
        for sink in self.sinks:
            sink.apply(shadowed, progress)
        self.stats.writes += len(shadowed)

    # --- the checkpoint --------------------------------------------------------------------------
    def checkpoint(self) -> None:
        if self.path is None:
            return
        states = [
            [(key, ks.dump(runner.stage)) for key, ks in states.items()]
            for runner, states in zip(self.runners, self.states, strict=True)
        ]
        data = Checkpoint(
            dict(self.next),
            dict(self.clock.highest),
            self.clock.current,
            states,
            {k: v for k, v in self.stats.to_dict().items() if isinstance(v, int)},
        )
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(msgspec.msgpack.encode(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _load(self, path: Path) -> None:
        data = msgspec.msgpack.decode(path.read_bytes(), type=Checkpoint)
        self.next = dict(data.next)
        self.clock.highest = dict(data.highest)
        self.clock.current = data.watermark
        for runner, states, dumped in zip(self.runners, self.states, data.states, strict=True):
            for key, ks in dumped:
                states[key] = KeyState.load(runner.stage, ks)
        s = data.stats
        self.stats.read, self.stats.events = s.get("read", 0), s.get("events", 0)
        self.stats.dead, self.stats.writes, self.stats.withheld = (
            s.get("deadLetters", 0),
            s.get("writes", 0),
            s.get("withheld", 0),
        )
        self.stats.seeded = s.get("seeded", 0)
        log.info("replay resumed from %s: %d records read before", path, self.stats.read)

    def keys(self) -> int:
        return sum(len(s) for s in self.states)


def _to_read(messages: list[Any], todo: Mapping[str, int]) -> Iterator[tuple[Any, str, int, int]]:
    """(record, partition, offset, the partition's end) for the records of partitions still to
    read; a fatal consumer error raises."""
    for msg in messages:
        error = msg.error()
        if error is not None:
            if error.fatal():
                raise RuntimeError(f"Kafka: {error}")
            continue
        p = partition_name(msg.topic(), msg.partition())
        end = todo.get(p)
        if end is not None:
            yield msg, p, msg.offset(), end


def _stand(c: Any, todo: Mapping[str, int], read: dict[str, int]) -> None:
    """Where each partition is now, into `read`: the consumer's position passes transaction
    markers (not records), so a partition whose last offsets are markers is done by it."""
    for tp in c.position([TopicPartition(*parse_partition_name(p)) for p in todo]):
        if tp.offset >= 0:
            p = partition_name(tp.topic, tp.partition)
            read[p] = max(read.get(p, 0), min(tp.offset, todo[p]))
