"""The loader: lands the CDC, event and revenue-window topics into the raw tables in micro-batches.

    Kafka (cdc.public.*, ecommerce.* events, revenue windows)
      -> consume up to `batch_seconds` / `batch_max_records`        # [Message]
      -> route: decode and map each record to its raw table          # {"cdc_orders": [row, ...], ...}
      -> insert one block per table                                  # ClickHouse: ~1 insert/s/table
      -> commit the batch's offsets                                  # only after the insert

At-least-once into tables that deduplicate (see `tables`): a crash between insert and commit lands
the batch again, and the second copy collapses into the first. A record that cannot be read goes to
the dead-letter topic (with its reason, in the batch, before the offsets move); anything else that
fails (the registry or the store unreachable) rewinds the batch and retries it."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from olap.settings import OlapSettings
from olap.tables import (
    CDC_TABLES,
    CDC_TOPIC_PREFIX,
    COLUMNS,
    EVENT_TOPICS,
    RAW_DATABASE,
    REVENUE_WINDOW_TOPIC,
    BadRecord,
    Origin,
    cdc_row,
    event_row,
    revenue_window_row,
)
from shopstream.runtime.dead_letters import DeadLetter, DeadLetterWriter
from shopstream.serde import AvroSerde
from shopstream.serde.errors import SerdeError

log = logging.getLogger("shopstream.olap.loader")
SOURCE = "olap_loader"  # dlq.dataflow of its dead letters

Batch = dict[str, list[tuple[Any, ...]]]  # raw table -> rows


@dataclass
class LoaderStats:
    """What the loader has done since it started (read by the service's /status)."""

    started_at: float = field(default_factory=time.time)
    batches: int = 0
    records: int = 0
    landed: Counter[str] = field(default_factory=Counter)  # raw table -> rows inserted
    dead_letters: int = 0
    retries: int = 0
    replays: int = 0
    last_batch_at: float | None = None
    last_batch_records: int = 0
    last_batch_seconds: float = 0.0
    # per batch: (landed at, records, the oldest record's age at landing in ms)
    recent: deque[tuple[float, int, float]] = field(default_factory=lambda: deque(maxlen=600))
    backlog: dict[str, int] = field(default_factory=dict)  # topic -> records not yet landed
    backlog_at: float | None = None  # when the backlog was measured (after the last poll)
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        recent = list(self.recent)  # copies: the loader thread changes these while /status reads
        window = [b for b in recent if b[0] >= time.time() - 60]
        rate = sum(b[1] for b in window) / 60 if window else 0.0
        return {
            "batches": self.batches,
            "records": self.records,
            "landed": self.landed.copy(),
            "deadLetters": self.dead_letters,
            "retries": self.retries,
            "replays": self.replays,
            "lastBatchAt": self.last_batch_at,
            "lastBatchRecords": self.last_batch_records,
            "lastBatchSeconds": round(self.last_batch_seconds, 4),
            "recordsPerSecond1m": round(rate, 1),
            "maxLagMs1m": round(max((b[2] for b in window), default=0.0), 1),
            "backlog": self.backlog.copy(),
            "backlogAt": self.backlog_at,
            "settled": self.backlog_at is not None and not any(self.backlog.values()),
            "lastError": self.last_error,
        }


class Loader:
    """One consumer of every landed topic, inserting into the store through `client`."""

    def __init__(self, settings: OlapSettings, client: Client, serde: AvroSerde) -> None:
        self.settings = settings
        self.client = client
        self.serde = serde
        self.stats = LoaderStats()
        self.prefix = settings.topic_prefix
        self._replay = threading.Event()
        self._pause = threading.Event()
        self._paused = threading.Event()
        self.paused_at: dict[tuple[str, int], int] = {}
        self._rewound: set[tuple[str, int]] = set()  # partitions a replay has sought already
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "group.id": settings.consumer_group,
                "enable.auto.commit": False,
                "auto.offset.reset": settings.auto_offset_reset,
                # the outbox connector writes plain records; the dataflows write in transactions
                "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": 5_000,  # new cdc.* topics join quickly
                "fetch.max.bytes": 64 * 1024 * 1024,
            }
        )
        self._admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
        self._dead_letters = DeadLetterWriter(settings.kafka.bootstrap, settings.dlq_topic, client_id="olap-loader")

    def subscriptions(self) -> list[str]:
        """The topics landed: every CDC topic (a pattern), the outbox events, the revenue windows."""
        return subscriptions(self.prefix)

    # --- one record -----------------------------------------------------------------------------
    def route(self, msg: Message) -> tuple[str, tuple[Any, ...]] | None:
        """(raw table, row) for a record; None for one that carries nothing (a tombstone)."""
        return route(msg, self.prefix, self.serde)

    # --- a pause (a rebuild's promotion swaps the tables under a loader that stands still) -------
    def pause(self, timeout: float) -> dict[tuple[str, int], int]:
        """Stop landing once the batch in hand is landed and committed; the positions it stands at
        (topic, partition) -> the next offset to land. RuntimeError if it did not pause in time."""
        self._paused.clear()
        self._pause.set()
        if not self._paused.wait(timeout):
            self._pause.clear()
            raise RuntimeError(f"the loader did not pause within {timeout:.0f}s")
        return dict(self.paused_at)

    def resume(self) -> None:
        self._pause.clear()

    def _stand_still(self, stop: threading.Event) -> None:
        positions = self._consumer.position(self._consumer.assignment())
        unknown = [tp for tp in positions if tp.offset < 0]
        committed = {tp_key(c): c.offset for c in self._consumer.committed(unknown, timeout=10)}
        self.paused_at = {
            (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else max(committed.get(tp_key(tp), 0), 0)
            for tp in positions
        }
        self._paused.set()
        while self._pause.is_set() and not stop.is_set():
            msg = self._consumer.poll(0.2)  # the partitions are paused: nothing comes (but the group's events)
            if msg is not None and msg.error() is None:  # one fetched before the pause: read it after
                self._consumer.seek(TopicPartition(msg.topic() or "", msg.partition() or 0, msg.offset() or 0))
        self._paused.clear()

    # --- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Land batches until `stop` is set; the last batch is landed and committed first."""
        self._consumer.subscribe(self.subscriptions())
        log.info("landing %s into %s", ", ".join(self.subscriptions()), RAW_DATABASE)
        try:
            while not stop.is_set():
                try:
                    if self._pause.is_set():
                        self._consumer.pause(self._consumer.assignment())
                        try:
                            self._stand_still(stop)
                        finally:
                            self._consumer.resume(self._consumer.assignment())
                        continue
                    if self._replay.is_set():
                        self._rewind_to_beginning()
                    messages = self._collect(stop)
                    if messages:
                        self._land_with_retry(messages, stop)
                    self._measure_backlog()
                except Exception as exc:  # the loop must outlive any one failure (it says so in /status)
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("loader loop")
                    stop.wait(1.0)
        finally:
            self._consumer.close()
            self._dead_letters.close()

    def replay(self) -> None:
        """Land every assigned partition again from its beginning (asked from another thread)."""
        self._replay.set()

    def _rewind_to_beginning(self) -> None:
        """Seek every assigned partition to its beginning; until the group has assigned some (or a
        seek fails: a partition not fetched yet), the replay stays asked for and is tried again."""
        assignment = self._consumer.assignment()
        if not assignment:
            return
        failed = 0
        for tp in assignment:
            if (tp.topic, tp.partition) in self._rewound:
                continue
            try:
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
                self._rewound.add((tp.topic, tp.partition))
            except KafkaException as exc:
                failed += 1
                log.debug("replay: %s[%s] not yet: %s", tp.topic, tp.partition, exc)
        self.stats.backlog_at = None  # not settled until measured again
        if failed:
            return
        self._replay.clear()
        self._rewound.clear()
        self.stats.replays += 1
        log.info("replay: %d partitions back to their beginning", len(assignment))

    def _collect(self, stop: threading.Event) -> list[Message]:
        deadline = time.monotonic() + self.settings.batch_seconds
        out: list[Message] = []
        while not stop.is_set() and len(out) < self.settings.batch_max_records:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            want = min(10_000, self.settings.batch_max_records - len(out))
            for msg in self._consumer.consume(num_messages=want, timeout=min(left, 0.25)):
                err = msg.error()
                if err is None:
                    out.append(msg)
                elif err.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue  # a landed topic that does not exist yet (no writes so far)
                else:
                    log.warning("consumer: %s", err)
        return out

    def _land_with_retry(self, messages: list[Message], stop: threading.Event) -> None:
        delay = 0.5
        while True:
            try:
                self.land(messages)
                return
            except Exception as exc:  # the registry or the store: rewind and try again
                self.stats.retries += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("batch of %d records not landed, retrying in %.1fs", len(messages), delay)
                if stop.wait(delay):
                    self._rewind(messages)
                    return
                delay = min(delay * 2, 10.0)

    def land(self, messages: list[Message]) -> Batch:
        """Route, insert and commit one batch; returns what was inserted."""
        started = time.monotonic()
        batch: Batch = {}
        bad: list[tuple[Message, str]] = []
        for msg in messages:
            try:
                routed = self.route(msg)
            except BadRecord as exc:
                bad.append((msg, str(exc)))
                continue
            if routed is not None:
                batch.setdefault(routed[0], []).append(routed[1])
        insert(self.client, RAW_DATABASE, batch)
        # dead letters only once the batch is in (a retried batch would send them twice), and
        # delivered before the offsets move past them
        if bad:
            self._write_dead_letters(bad)
        try:
            self._consumer.commit(offsets=_next_offsets(messages), asynchronous=False)
        except KafkaException as exc:
            # partitions taken away by a rebalance: their new owner lands them again from the last
            # commit, and the raw tables absorb the copies; retrying the commit cannot succeed
            log.warning("batch %d: offsets not committed (%s), to be landed again", self.stats.batches + 1, exc)
        now = time.time()
        oldest = min((m.timestamp()[1] for m in messages), default=int(now * 1000))
        self.stats.batches += 1
        self.stats.records += len(messages)
        self.stats.landed.update({t: len(r) for t, r in batch.items()})
        self.stats.last_batch_at = now
        self.stats.last_batch_records = len(messages)
        self.stats.last_batch_seconds = time.monotonic() - started
        self.stats.recent.append((now, len(messages), max(0.0, now * 1000 - oldest)))
        self.stats.last_error = None
        log.info(
            "batch %d: %d records -> %s in %.3fs",
            self.stats.batches,
            len(messages),
            ", ".join(f"{t} {len(r)}" for t, r in sorted(batch.items())) or "nothing",
            self.stats.last_batch_seconds,
        )
        return batch

    def _write_dead_letters(self, bad: list[tuple[Message, str]]) -> None:
        self._dead_letters.write(
            [
                DeadLetter(
                    SOURCE,
                    reason,
                    msg.value(),
                    msg.key(),
                    (msg.topic() or "", msg.partition() or 0, msg.offset() or 0),
                    headers=msg.headers() or [],
                )
                for msg, reason in bad
            ]
        )
        self.stats.dead_letters += len(bad)

    def _rewind(self, messages: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic() or "", m.partition() or 0)
            first[key] = min(first.get(key, m.offset() or 0), m.offset() or 0)
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except Exception:  # not assigned any more: its new owner starts from the commit
                log.debug("no rewind of %s[%s]", topic, partition)

    def _measure_backlog(self) -> None:
        """Records written but not landed, per topic: one batched ListOffsets (read_committed:
        up to the last stable offset) against our positions, at most once a second."""
        if self.stats.backlog_at is not None and time.time() - self.stats.backlog_at < 1.0:
            return
        backlog: Counter[str] = Counter()
        try:
            assignment = self._consumer.assignment()
            if not assignment:  # not in the group yet, or rebalancing: nothing can be said
                self.stats.backlog_at = None
                return
            positions = self._consumer.position(assignment)
            # a partition not fetched from yet has no position: it starts at its committed offset
            unknown = [tp for tp in positions if tp.offset < 0]
            committed = self._consumer.committed(unknown, timeout=5) if unknown else []
            start = {(c.topic, c.partition): c.offset for c in committed}
            ends = self._admin.list_offsets(
                {TopicPartition(tp.topic, tp.partition): OffsetSpec.latest() for tp in positions},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=5,
            )
            for tp in positions:
                end = ends[TopicPartition(tp.topic, tp.partition)].result().offset
                at = tp.offset if tp.offset >= 0 else start.get((tp.topic, tp.partition), -1)
                # at < 0: nothing committed either; auto.offset.reset decides (earliest: all of it)
                backlog[tp.topic] += max(0, end - at) if at >= 0 else end
        except Exception as exc:  # a status figure, never a reason to stop landing
            log.debug("backlog: %s", exc)
            return
        self.stats.backlog = dict(backlog)
        self.stats.backlog_at = time.time()


def route(msg: Message, prefix: str, serde: AvroSerde) -> tuple[str, tuple[Any, ...]] | None:
    """(raw table, row) for a record of a landed topic (`prefix` before its name); None for one
    that carries nothing (a tombstone); BadRecord for one that cannot be landed."""
    topic, value = msg.topic() or "", msg.value()
    origin = Origin(topic, msg.partition() or 0, msg.offset() or 0)
    name = topic.removeprefix(prefix)
    if name.startswith(CDC_TOPIC_PREFIX):
        table = name.removeprefix(CDC_TOPIC_PREFIX)
        row = cdc_row(table, msg.key(), value, origin)
        return None if row is None else (f"cdc_{table}", row)
    if value is None:
        raise BadRecord("an event record without a value")
    try:
        schema_id, event = serde.decode(value)
    except SerdeError as exc:
        raise BadRecord(str(exc)) from exc
    if name == REVENUE_WINDOW_TOPIC:
        return "revenue_windows", revenue_window_row(event, origin)
    return "events", event_row(schema_id, event, origin)


def insert(client: Client, database: str, batch: Batch) -> None:
    """One block per table of `database`."""
    for table, rows in batch.items():
        client.insert(f"{database}.{table}", rows, column_names=list(COLUMNS[table]))


def subscriptions(prefix: str) -> list[str]:
    """The topics landed: every CDC topic (a pattern), the outbox events, the revenue windows."""
    cdc = "^" + re.escape(prefix + CDC_TOPIC_PREFIX) + "(" + "|".join(CDC_TABLES) + ")$"
    return [cdc, *sorted(prefix + t for t in EVENT_TOPICS), prefix + REVENUE_WINDOW_TOPIC]


def tp_key(tp: TopicPartition) -> tuple[str, int]:
    return (tp.topic, tp.partition)


def _next_offsets(messages: list[Message]) -> list[TopicPartition]:
    """The offsets to commit: one past the last record landed, per partition."""
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic() or "", m.partition() or 0)
        last[key] = max(last.get(key, -1), m.offset() or 0)
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
