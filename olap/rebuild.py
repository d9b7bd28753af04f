"""Rebuilding the OLAP landing beside the live one: `shopstream replay ... olap_landing`, run by
the OLAP service (the one process that owns the store).

A generation N is a database `raw_r<N>` with every raw table made like the live one (its comment
says `shopstream generation N`). `start` takes the offset vector of every landed topic as of now
(read_committed: up to the last stable offset) and lands every record below it into the shadow
with the live loader's own mapping (`olap.loader.route`); a record the loader sent to the
dead-letter topic is only counted (no dead letter twice). Progress goes to
`shopstream_replay.olap_progress` after each block is in, so a service killed mid-rebuild continues
the rebuild when it starts again, from where the shadow stands; a block landed twice collapses
like any (the raw tables deduplicate).

Parity is computed at the generation's vector on both sides, no pause needed: every raw row keeps
the position of the record it came from (`_topic`, `_partition`, `_offset`), so "the live landing
as of the vector" is the live rows below it, once the live loader has committed past it. Per
table, each row identity (the table's sorting key: what ReplacingMergeTree keeps one row of) is
reduced to a digest of what the row says (`tables.IDENTITY`: the kept row, the highest by version
then offset), digests are summed per shard (64, order-independent) and shards compared; the keys
of differing shards are compared one by one and listed with both rows.

Promotion pauses the live loader (it finishes the block in hand and stands at its positions),
lands into the shadow what the live loader landed past the vector, swaps every table with
`EXCHANGE TABLES raw.t AND raw_r<N>.t` (atomic per table; both hold the same records at that
point, so a query across tables never mixes two states), renames the database that now holds
the old tables `raw_r<M>` (M the generation that was live; 0 for the first landing), and lets the
loader go on from where it stood: no record missing, none twice. A promotion cut off (the service
killed) is `promoting`: promote again swaps the tables whose comment does not yet say N."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from olap.loader import Batch, Loader, insert, route, subscriptions
from olap.settings import OlapSettings
from olap.store import connect
from olap.tables import COLUMNS, IDENTITY, RAW_DATABASE, BadRecord, ddl
from shopstream.serde import AvroSerde

log = logging.getLogger("shopstream.olap.rebuild")

NAME = "olap_landing"  # its name among the projections `shopstream replay` knows
META = "shopstream_replay"
SHARDS = 64
MAX_LISTED = 200  # differing rows listed per table
Vector = dict[str, int]  # "topic:partition" -> offset (the next record's)

META_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {META}",
    f"""CREATE TABLE IF NOT EXISTS {META}.olap_generations (
        generation UInt32,
        status LowCardinality(String),
        record String COMMENT 'the generation as JSON: vector, figures, parity, previous',
        version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY generation""",
    f"""CREATE TABLE IF NOT EXISTS {META}.olap_progress (
        generation UInt32, topic String, partition UInt32, next UInt64
    ) ENGINE = ReplacingMergeTree(next) ORDER BY (generation, topic, partition)""",
)


class RebuildError(RuntimeError):
    """A rebuild command that cannot be done as asked (said to the operator as it is)."""


def database(generation: int) -> str:
    return f"{RAW_DATABASE}_r{int(generation)}"


def key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def split(position: str) -> tuple[str, int]:
    topic, _, partition = position.rpartition(":")
    return topic, int(partition)


@dataclass
class Generation:
    generation: int
    status: str  # running, built, verified, differs, promoting, promoted (live), retired, failed
    until: Vector = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    stats: dict[str, Any] = field(default_factory=dict)
    parity: bool | None = None
    previous: int | None = None  # the generation it replaced, once promoting
    error: str | None = None
    max_rate: int | None = None  # records/s at most (a rebuild beside a busy live loader), None: as fast as it goes

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "status": self.status,
            "until": self.until,
            "startedAt": self.started_at,
            "stats": self.stats,
            "parity": self.parity,
            "previous": self.previous,
            "error": self.error,
            "maxRate": self.max_rate,
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> Generation:
        return cls(
            data["generation"],
            data["status"],
            {k: int(v) for k, v in data.get("until", {}).items()},
            data.get("startedAt", 0.0),
            data.get("stats", {}),
            data.get("parity"),
            data.get("previous"),
            data.get("error"),
            data.get("maxRate"),
        )


class Rebuilds:
    """The OLAP landing's generations, in the OLAP service."""

    def __init__(self, settings: OlapSettings, client: Client, serde: AvroSerde, loader: Loader) -> None:
        self.settings = settings
        self.client = client  # this object's own (one query at a time: calls hold `lock`)
        self.lander = connect(settings)  # the blocks' inserts: the status and verify queries go on meanwhile
        self.serde = serde
        self.loader = loader
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self._threads: dict[int, threading.Thread] = {}
        self._version = time.time_ns()
        self._admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
        self._committed = Consumer(
            {"bootstrap.servers": settings.kafka.bootstrap, "group.id": settings.consumer_group}
        )  # never subscribes: reads what the loader's group committed
        for statement in META_DDL:
            self.client.command(statement)

    # --- records ---------------------------------------------------------------------------------
    def generations(self) -> list[Generation]:
        with self.lock:
            rows = self.client.query(
                f"SELECT record FROM {META}.olap_generations FINAL ORDER BY generation"
            ).result_rows
        return [Generation.of(json.loads(r[0])) for r in rows]

    def get(self, generation: int | None) -> Generation:
        found = [g for g in self.generations() if g.status not in ("dropped",)]
        if generation is None:
            built = [g for g in found if g.status not in ("promoted", "retired", "live")]
            if not built:
                raise RebuildError(f"{NAME} has no generation to act on: run it first")
            return built[-1]
        for g in found:
            if g.generation == generation:
                return g
        raise RebuildError(f"{NAME} has no generation {generation}")

    def live(self) -> int:
        promoted = [g.generation for g in self.generations() if g.status == "promoted"]
        return promoted[-1] if promoted else 0

    def _save(self, g: Generation) -> None:
        with self.lock:
            self._version = max(self._version + 1, time.time_ns())
            self.client.insert(
                f"{META}.olap_generations",
                [(g.generation, g.status, json.dumps(g.to_json()), self._version)],
                column_names=["generation", "status", "record", "version"],
            )

    def progress(self, generation: int) -> Vector:
        with self.lock:
            rows = self.client.query(
                f"SELECT topic, partition, max(next) FROM {META}.olap_progress WHERE generation = {int(generation)} "
                "GROUP BY topic, partition"
            ).result_rows
        return {key(t, p): int(n) for t, p, n in rows}

    # --- the log ---------------------------------------------------------------------------------
    def _landed_topics(self) -> list[str]:
        patterns = subscriptions(self.settings.topic_prefix)
        names = self._admin.list_topics(timeout=10).topics
        cdc = re.compile(patterns[0])
        return sorted(t for t in names if cdc.match(t) or t in patterns[1:])

    def vector(self) -> Vector:
        """The end of every partition of the landed topics, as of now (read_committed)."""
        metadata = self._admin.list_topics(timeout=10).topics
        partitions = [TopicPartition(t, p) for t in self._landed_topics() for p in metadata[t].partitions]
        if not partitions:
            return {}
        ends = self._admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in partitions},
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=10,
        )
        return {key(tp.topic, tp.partition): int(ends[tp].result().offset) for tp in partitions}

    def live_committed(self, positions: list[str]) -> Vector:
        """What the live loader has landed and committed, per partition."""
        tps = [TopicPartition(*split(p)) for p in positions]
        if not tps:
            return {}
        return {key(tp.topic, tp.partition): max(tp.offset, 0) for tp in self._committed.committed(tps, timeout=10)}

    # --- plan ------------------------------------------------------------------------------------
    def plan(self) -> dict[str, Any]:
        """What a run would land, into which database, and how long it should take at the rate the
        last rebuild landed at."""
        until = self.vector()
        tps = [TopicPartition(*split(p)) for p in until]
        starts = (
            {key(tp.topic, tp.partition): r.result().offset for tp, r in self._earliest(tps).items()} if tps else {}
        )
        partitions = [
            {"partition": p, "from": starts.get(p, 0), "to": e, "records": max(0, e - starts.get(p, 0))}
            for p, e in sorted(until.items())
        ]
        records = sum(part["records"] for part in partitions)
        done = [g for g in self.generations() if g.stats.get("wallSeconds")]
        rate = round(done[-1].stats["read"] / done[-1].stats["wallSeconds"]) if done else None
        n = max([self.live(), *(g.generation for g in self.generations())]) + 1
        return {
            "projection": NAME,
            "generation": n,
            "from": "the start of the retained log",
            "partitions": partitions,
            "records": records,
            "targets": {"clickhouse": database(n)},
            "withheld": ["dead letters (the live loader sent them)"],
            "seedTables": [],
            "ratePerSecond": rate,
            "etaSeconds": round(records / rate, 1) if rate else None,
        }

    def _earliest(self, tps: list[TopicPartition]) -> dict[TopicPartition, Any]:
        return dict(self._admin.list_offsets({tp: OffsetSpec.earliest() for tp in tps}, request_timeout=10))

    # --- run -------------------------------------------------------------------------------------
    def start(self, max_rate: int | None = None) -> Generation:
        """A new generation up to the log's end as of now, landing in the background (at most
        `max_rate` records/s); or the one still running (a run asked again continues it)."""
        with self.lock:
            for g in self.generations():
                if g.status == "running":
                    self._spawn(g)
                    return g
            numbers = [g.generation for g in self.generations()]
            n = max([self.live(), *numbers]) + 1
            g = Generation(n, "running", self.vector(), max_rate=max_rate)
            g.stats = {"read": 0, "landed": {}, "badRecords": 0, "records": self._records(g.until)}
            for statement in ddl(database(n), n):
                self.client.command(statement)
            self._save(g)
            self._spawn(g)
            log.info("%s generation %d: landing %d records into %s", NAME, n, g.stats["records"], database(n))
            return g

    def resume(self) -> None:
        """At the service's start: continue every rebuild a stop or a kill cut off."""
        for g in self.generations():
            if g.status == "running":
                log.info("%s generation %d: continuing after a restart", NAME, g.generation)
                self._spawn(g)

    def _records(self, until: Vector) -> int:
        tps = [TopicPartition(*split(p)) for p in until]
        if not tps:
            return 0
        starts = self._earliest(tps)
        return sum(max(0, until[key(tp.topic, tp.partition)] - starts[tp].result().offset) for tp in tps)

    def _spawn(self, g: Generation) -> None:
        running = self._threads.get(g.generation)
        if running is not None and running.is_alive():
            return
        thread = threading.Thread(target=self._build, args=(g.generation,), name=f"olap-rebuild-{g.generation}")
        thread.daemon = True
        self._threads[g.generation] = thread
        thread.start()

    def _build(self, n: int) -> None:
        g = self.get(n)
        started = time.monotonic()
        try:
            self.land(n, self.progress(n), g.until, g)
        except Exception as exc:  # said in the record (and status): run again continues from the progress
            log.exception("%s generation %d", NAME, n)
            g.error = f"{type(exc).__name__}: {exc}"
            self._save(g)
            return
        if self.stop.is_set():
            return  # cut off by the service's stop: still running, continued at the next start
        g.status = "built"
        g.error = None
        g.stats["wallSeconds"] = round(g.stats.get("wallSeconds", 0.0) + time.monotonic() - started, 3)
        self._save(g)
        log.info("%s generation %d built: %d records read", NAME, n, g.stats["read"])

    def land(self, n: int, start: Vector, end: Vector, g: Generation) -> None:
        """Land every record in [start, end) per partition into generation n (from the log's start
        where `start` has nothing); progress after each block."""
        todo = {p: e for p, e in end.items() if start.get(p, 0) < e}
        if not todo:
            return
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap,
                "group.id": f"{self.settings.consumer_group}-rebuild-{n}",  # assigned, never committed
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.max.bytes": 64 * 1024 * 1024,
                "enable.partition.eof": True,  # a partition whose last records are transaction markers ends
            }
        )
        try:
            consumer.assign(
                [TopicPartition(*split(p), start[p] if start.get(p, 0) > 0 else OFFSET_BEGINNING) for p in sorted(todo)]
            )
            most = min(self.settings.batch_max_records, g.max_rate or self.settings.batch_max_records)
            while todo and not self.stop.is_set():
                began = time.monotonic()
                batch: Batch = {}
                nexts: dict[str, int] = {}
                read = bad = 0
                deadline = time.monotonic() + self.settings.batch_seconds
                while time.monotonic() < deadline and read < most:
                    for msg in consumer.consume(num_messages=min(10_000, most - read), timeout=0.25):
                        err = msg.error()
                        p = key(msg.topic() or "", msg.partition() or 0)
                        if err is not None and err.code() == KafkaError._PARTITION_EOF:
                            if p in todo:  # all of it read (its end is past the vector's)
                                nexts[p] = todo[p]
                            continue
                        if err is not None:
                            log.warning("rebuild consumer: %s", err)
                            continue
                        offset = msg.offset() or 0
                        if p not in todo or offset >= todo[p]:
                            continue
                        read += 1
                        nexts[p] = max(nexts.get(p, 0), offset + 1)
                        try:
                            routed = route(msg, self.settings.topic_prefix, self.serde)
                        except BadRecord:
                            bad += 1  # the live loader dead-lettered it: counted, not sent again
                            continue
                        if routed is not None:
                            batch.setdefault(routed[0], []).append(routed[1])
                insert(self.lander, database(n), batch)
                # where each partition stands (past control records and aborted transactions too)
                for tp in consumer.position([TopicPartition(*split(p)) for p in todo]):
                    p = key(tp.topic, tp.partition)
                    if tp.offset >= 0:
                        nexts[p] = max(nexts.get(p, 0), min(tp.offset, todo[p]))
                # the figures first, then the progress: a kill between them reads the block again
                # and counts it twice (what was read), never lands less
                landed: Counter[str] = Counter(g.stats.get("landed", {}))
                landed.update({t: len(r) for t, r in batch.items()})
                g.stats.update(
                    read=g.stats.get("read", 0) + read, badRecords=g.stats.get("badRecords", 0) + bad, landed=landed
                )
                if read or nexts:
                    self._save(g)
                if nexts:
                    with self.lock:
                        self.client.insert(
                            f"{META}.olap_progress",
                            [(n, *split(p), o) for p, o in nexts.items()],
                            column_names=["generation", "topic", "partition", "next"],
                        )
                for p, o in nexts.items():
                    if o >= todo.get(p, 0):
                        todo.pop(p, None)
                if g.max_rate and read:
                    self.stop.wait(max(0.0, read / g.max_rate - (time.monotonic() - began)))
        finally:
            consumer.close()

    # --- verify ----------------------------------------------------------------------------------
    def wait_for_live(self, until: Vector, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            committed = self.live_committed(list(until))
            behind = {p: (committed.get(p, 0), e) for p, e in until.items() if committed.get(p, 0) < e}
            if not behind:
                return
            if time.monotonic() > deadline:
                some = ", ".join(f"{p} at {at} of {e}" for p, (at, e) in list(behind.items())[:5])
                raise RebuildError(
                    f"the live loader has not landed up to the generation's vector in {wait:.0f}s: {some}"
                )
            time.sleep(0.5)

    def verify(self, generation: int | None, wait: float) -> dict[str, Any]:
        g = self.get(generation)
        if g.status == "running":
            raise RebuildError(f"{NAME} generation {g.generation} is still landing: wait for `run` to finish")
        if g.status in ("promoted", "retired", "promoting"):
            raise RebuildError(f"{NAME} generation {g.generation} is {g.status}: nothing to verify against")
        started = time.monotonic()
        self.wait_for_live(g.until, wait)
        tables = []
        for table in COLUMNS:
            tables.append(self._compare(table, RAW_DATABASE, database(g.generation), g.until))
        parity = all(t["differing"] == 0 for t in tables)
        g.parity = parity
        g.status = "verified" if parity else "differs"
        self._save(g)
        return {
            "projection": NAME,
            "generation": g.generation,
            "parity": parity,
            "seconds": round(time.monotonic() - started, 3),
            "liveMoved": False,
            "stores": tables,
        }

    def _rows_below(self, table: str, db: str, until: Vector) -> str:
        return f"FROM {db}.{table} WHERE _offset < {_map(until)}[concat(_topic, ':', toString(_partition))]"

    def _digests(self, table: str, db: str, until: Vector) -> dict[int, tuple[int, int]]:
        ident, order, says = IDENTITY[table]
        sql = (
            f"SELECT shard, count(), sum(h) FROM (SELECT cityHash64({', '.join(ident)}) % {SHARDS} AS shard, "
            f"argMax(cityHash64(toString(tuple({', '.join(says)}))), ({', '.join(order)})) AS h "
            f"{self._rows_below(table, db, until)} "
            f"GROUP BY {', '.join(ident)}) GROUP BY shard"
        )
        with self.lock:
            rows = self.client.query(sql).result_rows
        return {int(s): (int(c), int(h)) for s, c, h in rows}

    def _rows(self, table: str, db: str, until: Vector, shards: list[int]) -> dict[str, dict[str, Any]]:
        ident, order, says = IDENTITY[table]
        sql = (
            f"SELECT toJSONString(tuple({', '.join(ident)})) AS id, "
            f"argMax(tuple({', '.join(says)}), ({', '.join(order)})) AS row {self._rows_below(table, db, until)} "
            f"AND cityHash64({', '.join(ident)}) % {SHARDS} IN {{shards:Array(UInt64)}} GROUP BY {', '.join(ident)} "
            f"ORDER BY id LIMIT 100000"
        )
        with self.lock:
            rows = self.client.query(sql, parameters={"shards": shards}).result_rows
        return {str(i): {c: _plain(v) for c, v in zip(says, row, strict=True)} for i, row in rows}

    def _compare(self, table: str, live_db: str, shadow_db: str, until: Vector) -> dict[str, Any]:
        live, shadow = self._digests(table, live_db, until), self._digests(table, shadow_db, until)
        shards = sorted(live.keys() | shadow.keys())
        differing_shards = [s for s in shards if live.get(s) != shadow.get(s)]
        differences: list[dict[str, Any]] = []
        if differing_shards:
            a = self._rows(table, live_db, until, differing_shards)
            b = self._rows(table, shadow_db, until, differing_shards)
            for ident in sorted(a.keys() | b.keys()):
                if a.get(ident) != b.get(ident):
                    differences.append({"key": f"{table} {ident}", "live": a.get(ident), "shadow": b.get(ident)})
        return {
            "store": f"clickhouse {table}",
            "keys": sum(c for c, _ in live.values()),
            "shards": SHARDS,
            "equalShards": SHARDS - len(differing_shards),
            "differing": len(differences),
            "differences": differences[:MAX_LISTED],
        }

    # --- promote ---------------------------------------------------------------------------------
    def promote(self, generation: int | None, accept_differences: bool, wait: float) -> Generation:
        g = self.get(generation)
        if g.status == "running":
            raise RebuildError(f"{NAME} generation {g.generation} is still landing")
        if g.status != "promoting" and g.status != "verified" and not accept_differences:
            raise RebuildError(
                f"{NAME} generation {g.generation} is {g.status}, not verified: verify it, or promote it "
                "--accept-differences (a repair)"
            )
        started = time.monotonic()
        self.wait_for_live(g.until, wait)
        if g.status != "promoting":
            g.previous = self.live()
            g.status = "promoting"
            self._save(g)
        assert g.previous is not None
        stood = self.loader.pause(wait)
        try:
            at = {key(t, p): o for (t, p), o in stood.items()}
            end = {**g.until, **{p: max(o, g.until.get(p, 0)) for p, o in at.items()}}
            self.land(g.generation, self.progress(g.generation), end, g)
            if self.stop.is_set():
                raise RebuildError("the OLAP service is stopping: promote again once it is back")
            swapped = self._swap(g.generation)
            g.status = "promoted"
            g.stats["promoteSeconds"] = round(time.monotonic() - started, 3)
            g.stats["swapped"] = swapped
            self._save(g)
            for other in self.generations():
                if other.generation == g.previous and other.status == "promoted":
                    other.status = "retired"
                    self._save(other)
        finally:
            self.loader.resume()
        log.info("%s generation %d is live (generation %d retired)", NAME, g.generation, g.previous)
        return g

    def _comments(self, db: str) -> dict[str, str]:
        with self.lock:
            rows = self.client.query(
                "SELECT name, comment FROM system.tables WHERE database = {db:String}", parameters={"db": db}
            ).result_rows
        return {str(n): str(c) for n, c in rows}

    def _swap(self, n: int) -> list[str]:
        mark = f"shopstream generation {n}"
        swapped = []
        shadow = database(n)
        with self.lock:
            live = self._comments(RAW_DATABASE)
            if self.client.command(f"EXISTS DATABASE {shadow}"):
                for table in COLUMNS:
                    if live.get(table) == mark:
                        continue  # swapped by the promotion that was cut off
                    self.client.command(f"EXCHANGE TABLES {RAW_DATABASE}.{table} AND {shadow}.{table}")
                    swapped.append(table)
                previous = self.get(n).previous or 0
                self.client.command(f"RENAME DATABASE {shadow} TO {database(previous)}")
        return swapped

    # --- drop, status ----------------------------------------------------------------------------
    def drop(self, generation: int) -> dict[str, Any]:
        live = self.live()
        if generation == live:
            raise RebuildError(f"{NAME} generation {generation} is live: promote another one first")
        found = {g.generation: g for g in self.generations()}
        g = found.get(generation)
        if g is not None and g.status in ("running", "promoting"):
            raise RebuildError(f"{NAME} generation {generation} is {g.status}")
        with self.lock:
            existed = bool(self.client.command(f"EXISTS DATABASE {database(generation)}"))
            self.client.command(f"DROP DATABASE IF EXISTS {database(generation)}")
            self.client.command(f"ALTER TABLE {META}.olap_progress DELETE WHERE generation = {int(generation)}")
        if g is not None:
            g.status = "dropped"
            self._save(g)
        if not existed and g is None:
            raise RebuildError(f"{NAME} has no generation {generation}")
        return {"clickhouse": database(generation)}

    def status(self) -> dict[str, Any]:
        live = self.live()
        replays = []
        for g in self.generations():
            if g.status == "dropped":
                continue
            progress = self.progress(g.generation) if g.status == "running" else {}
            lag = sum(max(0, e - progress.get(p, 0)) for p, e in g.until.items()) if g.status == "running" else 0
            replays.append(
                {
                    "generation": g.generation,
                    "status": g.status,
                    "records": g.stats.get("read", 0),
                    "of": g.stats.get("records", 0),
                    "lag": lag,
                    "parity": g.parity,
                    "error": g.error,
                    "stats": g.stats,
                }
            )
        return {"projection": NAME, "live": {"clickhouse": RAW_DATABASE if live == 0 else f"generation {live}"},
                "liveGeneration": live, "replays": replays}  # fmt: skip


_POSITION = re.compile(r"^[A-Za-z0-9._-]+:[0-9]+$")  # a Kafka topic name's characters, then the partition


def _map(until: Vector) -> str:
    """The vector as a ClickHouse map literal (topic names and numbers only: nothing to quote)."""
    for position, offset in until.items():
        if not _POSITION.match(position) or not isinstance(offset, int):
            raise RebuildError(f"not a position of the vector: {position!r} {offset!r}")
    pairs = ", ".join(f"'{p}', {int(o)}" for p, o in sorted(until.items()))
    return f"map({pairs})::Map(String, UInt64)" if pairs else "map()::Map(String, UInt64)"


def _plain(value: Any) -> Any:
    """A column value as JSON can say it."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
