"""The replay service behind `shopstream replay`: plan, run, verify, promote, drop, status,
explain — one projection at a time, each replay a **generation** of it with a record in
`<state_dir>/replay/<group>/r<N>/` (`replay.json`, and the run's `checkpoint.msgpack`).

The protocol that makes verify and promote exact (`at the same offset vector`):

1. `run` reads the log from its start (or `--since`) up to the end vector taken when it began,
   into the shadow targets. Killed, it continues from its checkpoint.
2. `verify` and `promote` wait until the live dataflow's stores reflect at least what the shadow
   read, then pause it (`streams.pause`: it stops reading, finishes what it read and answers with
   the offset vector its stores reflect; its readers keep reading, the log keeps what it would
   have read), and bring the shadow to exactly that vector. Both sides now reflect the same
   records: every difference is a real one. `verify` compares and lets the live dataflow go on;
   `promote` swaps the shadow in (one atomic step per store) and lets it go on: the live engine
   continues from the positions the promoted stores hold, with its own state — the state both
   sides were built from.
3. `drop` deletes a generation that is not live.

A live dataflow that is stopped cannot answer a pause: `--live-stopped` takes the positions its
stores recorded instead."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import TopicPartition

from shopstream.domain.typed_events import DomainEvent
from streams.catalog import DataflowSpec, dataflow
from streams.core import (
    NEVER,
    Document,
    Invalidate,
    KeyState,
    Projection,
    Rank,
    Row,
    Upsert,
    Write,
    coalesce,
    parse_partition_name,
    partition_name,
    run_batch,
    without_side_effects,
)
from streams.engines.inputs import Unreadable
from streams.replay import compare, targets
from streams.replay.runner import ReplayRun, Stats, consumer, end_offsets, input_partitions, start_offsets
from streams.settings import DataflowSettings
from streams.sinks.cassandra_pointers import cassandra_tables
from streams.sinks.redis import RANK_VERSIONS

log = logging.getLogger("shopstream.replay")
STATUSES = ("running", "built", "verified", "differs", "promoting", "promoted", "retired", "dropped")


class ReplayError(RuntimeError):
    """What the operator is told, without a traceback (exit code 1)."""


class Record(msgspec.Struct, kw_only=True):
    """One generation of a projection, as `replay.json` keeps it."""

    projection: str
    group: str
    generation: int
    status: str
    topic_prefix: str
    start: dict[str, int]
    end: dict[str, int]  # the vector it was built (and last brought) to
    created_at: int
    updated_at: int
    redis_prefix: str
    tables: dict[str, str]  # Cassandra: logical → physical
    indices: dict[str, str]  # OpenSearch: alias → index
    stats: dict[str, Any] = msgspec.field(default_factory=dict)
    verify: dict[str, Any] | None = None
    promoted_at: int | None = None
    previous: dict[str, Any] | None = None  # what promotion retired: the old generation's names
    # a re-seed (`run --reseed`): the incremental snapshot's signal id, and the CDC partitions'
    # offsets before and after it — stepped before the log, never part of the offset vector
    seed_signal: str | None = None
    seed_start: dict[str, int] = msgspec.field(default_factory=dict)
    seed_end: dict[str, int] = msgspec.field(default_factory=dict)

    def shadow(self) -> targets.Shadow:
        return targets.Shadow(self.group, self.generation, self.redis_prefix, self.tables, self.indices)


def now_ms() -> int:
    return int(time.time() * 1000)


class Replays:
    """The replays of one dataflow's projection, under `settings` (the dataflow's own by default)."""

    def __init__(self, name: str, settings: DataflowSettings | None = None) -> None:
        self.spec: DataflowSpec = dataflow(name)
        self.settings = settings or self.spec.settings()
        self.projection: Projection = self.spec.projection(self.settings)
        self.group = self.settings.group(name)
        self.root = Path(self.settings.state_dir) / "replay" / self.group
        self.topics = [self.settings.topic_prefix + e.topic for e in self.projection.inputs]
        self.stores = [s for s in ("redis", "cassandra", "opensearch") if self._writes(s)]
        self._lease: Any = None  # the `PauseLease` of the pause this replay holds, if any

    def _writes(self, store: str) -> bool:
        if store == "redis":
            return bool(self.projection.redis_keys)
        return store in self.projection.stores and store in self.settings.stores

    # --- records -------------------------------------------------------------------------------
    def records(self) -> list[Record]:
        out = []
        for path in sorted(self.root.glob("r*/replay.json")):
            out.append(msgspec.json.decode(path.read_bytes(), type=Record))
        return sorted(out, key=lambda r: r.generation)

    def record(self, generation: int | None = None, *, statuses: tuple[str, ...] = STATUSES) -> Record:
        found = [
            r for r in self.records() if r.status in statuses and (generation is None or r.generation == generation)
        ]
        if not found:
            what = f"generation {generation}" if generation is not None else "replay"
            raise ReplayError(
                f"{self.spec.name}: no {what} that is {' or '.join(statuses)}"
                f" (`shopstream replay status {self.spec.name}`; a new one: `shopstream replay run {self.spec.name}`)"
            )
        return found[-1]

    def save(self, record: Record) -> None:
        record.updated_at = now_ms()
        folder = self.root / f"r{record.generation}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "replay.json.tmp"
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(record)))
        tmp.replace(folder / "replay.json")

    def checkpoint_path(self, record: Record) -> Path:
        return self.root / f"r{record.generation}" / "checkpoint.msgpack"

    # --- the stores ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _redis(self) -> Iterator[Any]:
        import redis

        client = redis.Redis.from_url(self.settings.redis.url, socket_timeout=60)
        try:
            yield client
        finally:
            client.close()

    @contextlib.contextmanager
    def _cassandra(self) -> Iterator[tuple[Any, Any]]:
        from cassandra.cluster import Cluster

        c = self.settings.cassandra
        cluster = Cluster(contact_points=[h for h, _ in c.hosts()], port=c.hosts()[0][1], connect_timeout=10)
        try:
            session = cluster.connect(c.keyspace)
            session.default_timeout = 60
            yield cluster, session
        finally:
            cluster.shutdown()

    @contextlib.contextmanager
    def _opensearch(self) -> Iterator[Any]:
        import httpx

        with httpx.Client(base_url=self.settings.opensearch.url.rstrip("/"), timeout=120) as http:
            yield http

    def live_generations(self) -> dict[str, int]:
        """The generation each store serves now."""
        out: dict[str, int] = {}
        if "redis" in self.stores:
            with self._redis() as r:
                out["redis"] = targets.redis_generation(r, self.group)
        if "cassandra" in self.stores:
            with self._cassandra() as (_, session):
                pointers = cassandra_tables(session)
            out["cassandra"] = max((_generation(pointers.get(t, t)) for t in self.projection.tables), default=0)
        if "opensearch" in self.stores:
            with self._opensearch() as http:
                out["opensearch"] = max(
                    (_generation(i) for a in self.projection.indices for i in targets.alias_indices(http, a)), default=0
                )
        return out

    def live_positions(self) -> dict[str, int]:
        """The positions the live dataflow's stores reflect: per partition, the lowest any of them
        recorded (a partition one of them has not recorded is left out)."""
        from streams.sinks.stores import Stores

        stores = Stores(self.projection, self.settings)
        try:
            held = [sink.progress() for sink in stores.sinks]
        finally:
            stores.close()
        held = [h for h in held if h] or [{}]
        out: dict[str, int] = {}
        for h in held:
            for p, offset in h.items():
                out[p] = min(out.get(p, offset), offset)
        if len(held) > 1:
            out = {p: o for p, o in out.items() if all(p in h for h in held)}
        return out

    # --- plan ----------------------------------------------------------------------------------
    def _vectors(self, since_ms: int | None) -> tuple[dict[str, int], dict[str, int]]:
        """Where a replay would start (the retained log's start, or `since_ms`) and end (now)."""
        c = consumer(self.settings)
        try:
            return start_offsets(c, self.topics, since_ms), end_offsets(c, self.topics)
        finally:
            c.close()

    def plan(self, since_ms: int | None = None, sample: int = 20_000) -> dict[str, Any]:
        start, end = self._vectors(since_ms)
        records = {p: max(end[p] - start.get(p, 0), 0) for p in end}
        generation = self.next_generation()
        shadow = self._shadow(generation)
        rate = self.measure_rate(start, end, sample)
        total = sum(records.values())
        return {
            "projection": self.spec.name,
            "group": self.group,
            "generation": generation,
            "from": "since " + str(since_ms) if since_ms is not None else "the start of the retained log",
            "partitions": [
                {"partition": p, "from": start.get(p, 0), "to": end[p], "records": records[p]} for p in sorted(end)
            ],
            "records": total,
            "targets": self._targets(shadow),
            "withheld": sorted(t.__name__ for t in self.projection.side_effects),
            # what `run --reseed` re-reads from Postgres (Debezium's incremental snapshot)
            "seedTables": sorted(self.projection.seeds),
            "ratePerSecond": round(rate) if rate else None,
            "etaSeconds": round(total / rate, 1) if rate else None,
        }

    def measure_rate(self, start: dict[str, int], end: dict[str, int], sample: int) -> float | None:
        """Events per second of this process decoding and stepping up to `sample` records of the
        log in memory (no store): what the plan's estimate is based on."""
        first = {p: start.get(p, 0) for p in end}
        until = {p: min(end[p], first[p] + max(sample // max(len(end), 1), 1)) for p in end}
        if not any(until[p] > first[p] for p in end):
            return None
        run = ReplayRun(self.projection, self.settings, None, None)
        try:
            stats = run.run(first, until)
        finally:
            run.close()
        return stats.read / stats.cpu_s if stats.cpu_s > 0 and stats.read else None

    def next_generation(self) -> int:
        held = [r.generation for r in self.records()]
        return max([*held, *self.live_generations().values(), 0]) + 1

    def _shadow(self, generation: int) -> targets.Shadow:
        tables = {t: targets.physical_name(t, generation) for t in self.projection.tables if "cassandra" in self.stores}
        indices: dict[str, str] = {}
        if self.projection.indices and "opensearch" in self.stores:
            with self._opensearch() as http:
                for alias in self.projection.indices:
                    live = targets.alias_indices(http, alias)
                    if len(live) != 1:
                        raise ReplayError(f"the OpenSearch alias {alias} points at {live or 'no index'}")
                    indices[alias] = targets.physical_name(live[0], generation)
        return targets.Shadow.make(self.group, generation, tables, indices)

    def _targets(self, shadow: targets.Shadow) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "redis" in self.stores:
            out["redis"] = {"namespace": shadow.redis_prefix, "keys": list(self.projection.redis_keys)}
        if "cassandra" in self.stores:
            out["cassandra"] = dict(shadow.tables)
        if "opensearch" in self.stores:
            out["opensearch"] = dict(shadow.indices)
        return out

    # --- run -----------------------------------------------------------------------------------
    def run(
        self,
        since_ms: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        reseed: bool = False,
        snapshot_progress: Callable[[str], None] | None = None,
    ) -> Record:
        """Continue the unfinished replay, or start a new generation; `progress(done, total)`.
        `reseed`: a new generation first takes an incremental snapshot of the projection's seed
        tables from Postgres and steps their rows before the log (`streams.replay.reseed`)."""
        try:
            record = self.record(statuses=("running",))
        except ReplayError:
            record = self._new(since_ms, reseed, snapshot_progress)
        shadow = record.shadow()
        self._make_targets(shadow)
        record.status = "running"
        self.save(record)
        stats = self._build(record, record.end, progress)
        record.stats = stats.to_dict()
        record.status = "built"
        self.save(record)
        return record

    def _new(self, since_ms: int | None, reseed: bool = False, snapshot_progress: Any = None) -> Record:
        signal: str | None = None
        seed_start: dict[str, int] = {}
        seed_end: dict[str, int] = {}
        if reseed:
            from streams.replay import reseed as snapshots

            tables = sorted(self.projection.seeds)
            if not tables:
                raise ReplayError(
                    f"{self.spec.name} has no seed tables: it is rebuilt from the log only"
                    " (the README's replay section lists what each projection can be re-seeded from)"
                )
            try:  # before the vector: the log it reads then covers every change the rows show
                signal, seed_start, seed_end = snapshots.take_snapshot(
                    self.settings.kafka.bootstrap,
                    self.settings.postgres.dsn.get_secret_value(),
                    tables,
                    self.settings.reseed_timeout,
                    snapshot_progress,
                )
            except snapshots.ReseedError as exc:
                raise ReplayError(str(exc)) from None
        start, end = self._vectors(since_ms)
        generation = self.next_generation()
        shadow = self._shadow(generation)
        t = now_ms()
        record = Record(
            projection=self.spec.name,
            group=self.group,
            generation=generation,
            status="running",
            topic_prefix=self.settings.topic_prefix,
            start=start,
            end=end,
            created_at=t,
            updated_at=t,
            redis_prefix=shadow.redis_prefix,
            tables=dict(shadow.tables),
            indices=dict(shadow.indices),
            seed_signal=signal,
            seed_start=seed_start,
            seed_end=seed_end,
        )
        self.save(record)
        return record

    def _make_targets(self, shadow: targets.Shadow) -> None:
        if shadow.tables:
            with self._cassandra() as (cluster, session):
                pointers = cassandra_tables(session)
                for logical, physical in shadow.tables.items():
                    targets.create_cassandra_table(
                        cluster, session, self.settings.cassandra.keyspace, pointers.get(logical, logical), physical
                    )
        if shadow.indices:
            with self._opensearch() as http:
                for alias, index in shadow.indices.items():
                    targets.create_shadow_index(http, alias, index)

    def _build(
        self,
        record: Record,
        until: dict[str, int],
        progress: Callable[[int, int], None] | None,
        ends: dict[str, int] | None = None,
        close_windows: bool = False,
    ) -> Stats:
        run = ReplayRun(self.projection, self.settings, record.shadow(), self.checkpoint_path(record))
        spans = [(record.seed_start, record.seed_end), (record.start, until)]
        total = sum(max(end[p] - start.get(p, 0), 0) for start, end in spans for p in end)
        done = sum(min(run.next.get(p, start.get(p, 0)), end[p]) - start.get(p, 0) for start, end in spans for p in end)
        if progress is not None:
            progress(done, total)

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(min(done, total), total)

        try:
            run.open_sinks()
            if record.seed_end:
                run.seed(record.seed_start, record.seed_end, advance)
            stats = run.run(record.start, until, advance, ends, close_windows)
            record.end = {
                p: max(run.next.get(p, 0), until.get(p, 0))
                for p in set(until) | set(run.next)
                if p not in record.seed_end
            }
        finally:
            run.close()
        return stats

    # --- bringing the shadow to the live positions ---------------------------------------------
    def _align(self, record: Record, live_stopped: bool, wait_s: float, progress: Any) -> dict[str, int]:
        """Pause the live dataflow — once the vector it answers with (what its stores reflect) is
        at or past what the shadow read; until then it is let go on and asked again — and bring the
        shadow to exactly that vector: the vector both sides reflect. The pause holds until
        `_release`."""
        from streams import pause

        deadline = time.monotonic() + wait_s
        while True:
            if live_stopped:  # the positions its stores recorded (nothing moves them)
                vector, ticks = self.live_positions(), self.settings.engine == "bytewax"
            else:  # paused: the vector it answers with is what its stores reflect
                with self._redis() as r:
                    request = pause.request_pause(r, self.group)
                    self._hold(pause.PauseLease(self.settings.redis.url, self.group, request))
                    try:
                        vector, ticks = pause.wait_paused(
                            r, self.group, request, max(deadline - time.monotonic(), 15.0)
                        )
                    except pause.NotPaused as exc:
                        self._drop_lease()
                        pause.release(r, self.group)
                        raise ReplayError(str(exc)) from None
            behind = {
                p: (vector.get(p), at)
                for p, at in record.end.items()
                if at > record.start.get(p, 0) and vector.get(p, -1) < at
            }
            if not behind:
                break
            if not live_stopped:  # let it read on, and ask again
                self._release()
            if live_stopped or time.monotonic() > deadline:
                raise ReplayError(
                    f"the live dataflow's stores reflect less than the shadow read: {behind} (live, shadow);"
                    f" is {self.spec.component()} running?"
                )
            time.sleep(1.0)
        c = consumer(self.settings)
        try:
            ends = end_offsets(c, self.topics)
        finally:
            c.close()
        until = {p: max(record.end.get(p, 0), vector.get(p, 0)) for p in set(record.end) | set(vector)}
        # windows turn final on the watermark alone where the live engine has timers (Bytewax), only
        # with a record where it has none (Quix): the shadow as the live one is at this vector
        self._build(record, until, progress, ends, close_windows=ticks)
        return {p: record.end[p] for p in sorted(record.end)}

    def _hold(self, lease: Any) -> None:
        """The lease that keeps the current pause request (renewed while this process runs)."""
        self._drop_lease()
        self._lease = lease

    def _drop_lease(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.close()

    def _release(self) -> None:
        from streams import pause

        self._drop_lease()
        with self._redis() as r:
            pause.release(r, self.group)

    # --- verify --------------------------------------------------------------------------------
    def verify(
        self, generation: int | None = None, live_stopped: bool = False, wait_s: float = 60.0, progress: Any = None
    ) -> dict[str, Any]:
        record = self.record(generation, statuses=("built", "verified", "differs"))
        started = time.monotonic()
        try:
            vector = self._align(record, live_stopped, wait_s, progress)
            parities = self.compare_stores(record)
        finally:
            if not live_stopped:
                self._release()
        moved = live_stopped and any(self.live_positions().get(p, 0) > o for p, o in vector.items())
        equal = all(not p.differences for p in parities)
        result = {
            "projection": self.spec.name,
            "generation": record.generation,
            "at": vector,
            "parity": equal and not moved,
            "liveMoved": moved,
            "stores": [p.to_dict() for p in parities],
            "seconds": round(time.monotonic() - started, 3),
            "verifiedAt": now_ms(),
        }
        record.verify = result
        record.status = "verified" if result["parity"] else "differs"
        self.save(record)
        return result

    def compare_stores(self, record: Record) -> list[compare.Parity]:
        out = []
        if "redis" in self.stores:
            out.append(self._compare_redis(record))
        if "cassandra" in self.stores:
            out += self._compare_cassandra(record)
        if "opensearch" in self.stores:
            out += self._compare_opensearch(record)
        return out

    def _compare_redis(self, record: Record) -> compare.Parity:
        patterns = self.projection.redis_keys
        parity = compare.Parity("redis")
        with self._redis() as r:
            # a ranking's versions hash is the sink's bookkeeping (what a newer write must exceed),
            # not a value readers see: promoted with the ranking, not compared
            live_keys = [k for k in targets.scan(r, patterns) if not k.endswith(RANK_VERSIONS)]
            cut = len(record.redis_prefix)
            shadow_keys = [
                k[cut:] for k in targets.scan(r, patterns, record.redis_prefix) if not k.endswith(RANK_VERSIONS)
            ]
            live, shadow = compare.redis_side(r, live_keys), compare.redis_side(r, shadow_keys, record.redis_prefix)
            keys, parity.equal_shards, parity.expiring = compare.differing_keys(live, shadow)
            parity.compared = len(set(live.keys) | set(shadow.keys))
            for key in keys:
                a = next((v for _, v, _ in compare.redis_values(r, [key])), None)
                b = next((v for _, v, _ in compare.redis_values(r, [key], record.redis_prefix)), None)
                parity.differences.append({"key": key, "live": a, "shadow": b})
        return parity

    def _redis_differences(self, r: Any, record: Record) -> list[str]:
        """Every key whose live value is not the shadow's, bookkeeping (rankings' versions) and
        keys about to expire included: what a promotion changes."""
        patterns = self.projection.redis_keys
        cut = len(record.redis_prefix)
        live = compare.redis_side(r, targets.scan(r, patterns))
        shadow_keys = [k[cut:] for k in targets.scan(r, patterns, record.redis_prefix)]
        keys, _, _ = compare.differing_keys(live, compare.redis_side(r, shadow_keys, record.redis_prefix), -(2**62))
        return keys

    def _compare_cassandra(self, record: Record) -> list[compare.Parity]:
        out = []
        keyspace = self.settings.cassandra.keyspace
        with self._cassandra() as (cluster, session):
            pointers = cassandra_tables(session)
            for logical, shadow_table in record.tables.items():
                live_table = pointers.get(logical, logical)
                if live_table == shadow_table:
                    raise ReplayError(f"generation {record.generation} is live already")
                columns = compare.cassandra_key_columns(cluster, keyspace, live_table)
                parity = compare.Parity(f"cassandra {logical} ({live_table} / {shadow_table})")
                live = compare.cassandra_side(session, live_table, columns)
                shadow = compare.cassandra_side(session, shadow_table, columns)
                keys, parity.equal_shards, parity.expiring = compare.differing_keys(live, shadow)
                parity.compared = len(set(live.keys) | set(shadow.keys))
                for key in keys:
                    parity.differences.append(
                        {
                            "key": key,
                            "live": compare.cassandra_row(session, live_table, columns, key),
                            "shadow": compare.cassandra_row(session, shadow_table, columns, key),
                        }
                    )
                out.append(parity)
        return out

    def _compare_opensearch(self, record: Record) -> list[compare.Parity]:
        out = []
        with self._opensearch() as http:
            for alias, shadow_index in record.indices.items():
                live = targets.alias_indices(http, alias)
                if live == [shadow_index]:
                    raise ReplayError(f"generation {record.generation} is live already")
                parity = compare.Parity(f"opensearch {alias} ({live[0]} / {shadow_index})")
                a, b = compare.opensearch_side(http, live[0]), compare.opensearch_side(http, shadow_index)
                keys, parity.equal_shards, parity.expiring = compare.differing_keys(a, b)
                parity.compared = len(set(a.keys) | set(b.keys))
                for key in keys:
                    parity.differences.append(
                        {
                            "key": key,
                            "live": compare.opensearch_document(http, live[0], key),
                            "shadow": compare.opensearch_document(http, shadow_index, key),
                        }
                    )
                out.append(parity)
        return out

    # --- promote / drop ------------------------------------------------------------------------
    def promote(
        self,
        generation: int | None = None,
        accept_differences: bool = False,
        live_stopped: bool = False,
        wait_s: float = 60.0,
        progress: Any = None,
    ) -> Record:
        record = self.record(generation, statuses=("built", "verified", "differs", "promoting"))
        # a promotion that was cut off (killed, a store down) after its checks: run again, it
        # finishes — the stores that serve the generation already are left as they are
        resuming = record.status == "promoting"
        if record.status != "verified" and not accept_differences and not resuming:
            why = "was not verified" if record.verify is None else "differs from the live one"
            raise ReplayError(
                f"generation {record.generation} {why}: `shopstream replay verify {self.spec.name}` first,"
                " or --accept-differences to put it live anyway (a repair: the live store lost or mangled writes)"
            )
        started = time.monotonic()
        try:
            vector = self._align(record, live_stopped, wait_s, progress)
            live = self.live_generations()
            previous: dict[str, Any] = record.previous if resuming and record.previous else {"generations": live}
            record.previous, record.status = previous, "promoting"
            self.save(record)  # before the first swap: from here on, running promote again finishes it
            if "redis" in self.stores:
                with self._redis() as r:
                    if live.get("redis") != record.generation:
                        differing = self._redis_differences(r, record)
                        swapped = targets.promote_redis(r, record.shadow(), self.projection.redis_keys, differing)
                        previous["redisKeys"] = swapped["retired"]
                        previous["redisKeysChanged"] = swapped["changed"]
                    else:  # swapped before the cut: what the catching up wrote into the namespace goes
                        targets.drop_namespace(r, record.shadow(), self.projection.redis_keys)
            if "cassandra" in self.stores:
                with self._cassandra() as (_, session):
                    pointers = cassandra_tables(session)
                    previous.setdefault("tables", {t: pointers.get(t, t) for t in record.tables})
                    for logical, physical in record.tables.items():
                        if pointers.get(logical, logical) != physical:
                            targets.point_cassandra(session, logical, physical, record.generation)
            if "opensearch" in self.stores:
                with self._opensearch() as http:
                    indices = previous.setdefault("indices", {})
                    for alias, index in record.indices.items():
                        if targets.alias_indices(http, alias) != [index]:
                            indices[alias] = targets.promote_index(http, alias, index)
            record.previous = previous
            record.promoted_at = now_ms()
            record.status = "promoted"
            record.stats = {
                **record.stats,
                "promotedAt": vector,
                "promoteSeconds": round(time.monotonic() - started, 3),
                **({"resumed": True} if resuming else {}),
            }
            for other in self.records():
                if other.status == "promoted" and other.generation != record.generation:
                    other.status = "retired"
                    self.save(other)
            self.save(record)
        finally:
            if not live_stopped:
                self._release()
        return record

    def drop(self, generation: int) -> dict[str, Any]:
        """Delete a generation that is not live: its Redis namespace, tables, index, checkpoint."""
        live = self.live_generations()
        if generation in live.values():
            raise ReplayError(f"generation {generation} is live ({live}): promote another one first")
        dropped: dict[str, Any] = {"generation": generation}
        if "redis" in self.stores:
            with self._redis() as r:
                dropped["redisKeys"] = targets.drop_redis(r, self.group, generation, self.projection.redis_keys)
        if "cassandra" in self.stores:
            with self._cassandra() as (_, session):
                pointers = cassandra_tables(session)
                names = [targets.physical_name(t, generation) for t in self.projection.tables]
                for logical, name in zip(self.projection.tables, names, strict=True):
                    if pointers.get(logical, logical) == name:
                        raise ReplayError(f"Cassandra's {name} is live")
                    session.execute(f"DROP TABLE IF EXISTS {name}", timeout=60)
                dropped["tables"] = names
        if "opensearch" in self.stores:
            with self._opensearch() as http:
                names = []
                for alias in self.projection.indices:
                    live_indices = targets.alias_indices(http, alias)
                    base = targets.physical_name(live_indices[0], 0) if live_indices else alias
                    name = targets.physical_name(base, generation)
                    if name in live_indices:
                        raise ReplayError(f"OpenSearch's {name} is live")
                    if http.head(f"/{name}").status_code == 200:
                        http.delete(f"/{name}")
                    names.append(name)
                dropped["indices"] = names
        for record in self.records():
            if record.generation == generation:
                record.status = "dropped"
                self.save(record)
                with contextlib.suppress(FileNotFoundError):
                    self.checkpoint_path(record).unlink()
        return dropped

    # --- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        records = self.records()
        out: dict[str, Any] = {"projection": self.spec.name, "group": self.group, "replays": []}
        try:
            out["live"] = self.live_generations()
        except Exception as exc:  # noqa: BLE001 - a store down: said, not raised
            out["live"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        ends: dict[str, int] = {}
        if records:
            c = consumer(self.settings)
            try:
                ends = end_offsets(c, self.topics)
            except Exception as exc:  # noqa: BLE001
                out["error"] = f"Kafka: {exc}"[:300]
            finally:
                c.close()
        for r in records:
            if r.status == "dropped":
                continue
            row = {
                "generation": r.generation,
                "status": r.status,
                "records": sum(max(r.end.get(p, 0) - r.start.get(p, 0), 0) for p in r.end),
                "lag": sum(max(ends[p] - r.end.get(p, 0), 0) for p in ends) if ends else None,
                "parity": None if r.verify is None else r.verify["parity"],
                "verifiedAt": None if r.verify is None else r.verify["verifiedAt"],
                "promotedAt": r.promoted_at,
                "stats": r.stats,
            }
            if r.status == "running":
                checkpoint = self.checkpoint_path(r)
                if checkpoint.exists():
                    held = msgspec.msgpack.decode(checkpoint.read_bytes())
                    row["lag"] = sum(max(r.end.get(p, 0) - held["next"].get(p, 0), 0) for p in r.end)
            out["replays"].append(row)
        return out

    # --- explain -------------------------------------------------------------------------------
    def explain(self, key: str, limit: int = 10_000) -> dict[str, Any]:
        """The events of `key` in the log (its projection's entry key: a product, an order), the
        writes re-folded from them alone, and what the live stores hold for those writes."""
        events: list[tuple[str, int, Any, DomainEvent]] = []
        c = consumer(self.settings)
        run = ReplayRun(self.projection, self.settings, None, None)
        wanted = key.encode()
        try:
            ends = end_offsets(c, self.topics)
            parts = input_partitions(c, self.topics)
            c.assign([TopicPartition(t, p, 0) for t, p in parts if ends[partition_name(t, p)] > 0])
            todo = {
                partition_name(t, p): ends[partition_name(t, p)] for t, p in parts if ends[partition_name(t, p)] > 0
            }
            position = dict.fromkeys(todo, 0)
            idle = 0
            while todo and idle < 3:
                batch = c.consume(num_messages=50_000, timeout=1.0)
                idle = idle + 1 if not batch else 0
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    p = partition_name(msg.topic(), msg.partition())
                    if p not in todo:
                        continue
                    position[p] = msg.offset() + 1
                    if msg.offset() >= todo[p]:
                        del todo[p]
                        continue
                    if msg.key() != wanted:
                        continue
                    try:
                        event = run.inputs.event(msg.topic(), msg.value(), msg.key())
                    except Unreadable as exc:
                        events.append((p, msg.offset(), str(exc), None))  # type: ignore[arg-type]
                        continue
                    events.append((p, msg.offset(), None, event))
                    if len(events) >= limit:
                        todo = {}
                        break
                for p in [p for p in todo if position[p] >= todo[p]]:
                    del todo[p]
        finally:
            c.close()
        events.sort(key=lambda e: (e[0], e[1]))  # each partition's records in their order
        items = [run.inputs.item(e, p, offset, NEVER) for p, offset, _, e in events if e is not None]
        run.close()
        forwarded: list[dict[str, Any]] = []
        values: list[dict[str, Any]] = []
        if any(stage.forwards for stage in self.projection.stages):
            # the key's own stage only: what it books for the next one (whose values come from
            # every key of this stage, e.g. every order's revenue in a window)
            entering = [i for i in items if self.projection.entry(i.value.envelope.event_type) == 0]
            _, sent = run.runners[0].run(key, KeyState(), entering)
            forwarded = [{"key": i.key, "value": msgspec.to_builtins(i.value), "eventTime": i.event_time} for i in sent]
        else:
            writes = run_batch(self.projection, run.runners, run.states, items)
            kept, _ = without_side_effects(self.projection, writes)
            values = [self._stored_next_to(w) for w in coalesce(kept)]
        listed = [
            {
                "topic": parse_partition_name(p)[0],
                "partition": parse_partition_name(p)[1],
                "offset": offset,
                **(
                    {"deadLetter": error}
                    if e is None
                    else {
                        "eventId": e.envelope.event_id,
                        "eventType": e.envelope.event_type,
                        "occurredAt": e.envelope.occurred_at,
                    }
                ),
            }
            for p, offset, error, e in events
        ]
        return {
            "projection": self.spec.name,
            "key": key,
            "events": listed,
            "values": values,
            "forwarded": forwarded,
            "equal": all(v["equal"] for v in values),
        }

    def _stored_next_to(self, w: Write) -> dict[str, Any]:
        """A re-folded write next to what the live store holds at its slot."""
        out: dict[str, Any] = {"slot": w.slot}
        if isinstance(w, Upsert):
            out["refolded"] = {"version": str(w.version), **dict(w.fields)}
            with self._redis() as r:
                held = r.hgetall(w.key)
            out["stored"] = {k.decode(): v.decode() for k, v in held.items()} or None
        elif isinstance(w, Rank):
            out["refolded"] = w.score
            with self._redis() as r:
                out["stored"] = r.zscore(w.key, w.member)
        elif isinstance(w, Invalidate):
            out["refolded"] = w.version
            with self._redis() as r:
                held = r.get(w.key)
            out["stored"] = None if held is None else int(held)
        elif isinstance(w, Row):
            out["refolded"] = compare.plain(dict(w.values)) if not w.delete else None
            with self._cassandra() as (cluster, session):
                table = cassandra_tables(session).get(w.table, w.table)
                columns = compare.cassandra_key_columns(cluster, self.settings.cassandra.keyspace, table)
                key = msgspec.json.encode([compare.plain(v) for _, v in w.key]).decode()
                stored = compare.cassandra_row(session, table, columns, key)
            out["stored"] = None if stored is None else {k: v for k, v in stored.items() if k in w.values}
        elif isinstance(w, Document):
            out["refolded"] = None if w.body is None else {"source": dict(w.body), "version": w.version}
            with self._opensearch() as http:
                out["stored"] = compare.opensearch_document(http, w.index, w.id)
        else:
            out["refolded"] = None
            out["stored"] = None
        out["equal"] = _equal(out["refolded"], out["stored"], w)
        return out


def _equal(refolded: Any, stored: Any, w: Write) -> bool:
    if isinstance(w, Rank):
        return (refolded is None and stored is None) or (
            refolded is not None and stored is not None and float(refolded) == float(stored)
        )
    return bool(msgspec.json.encode(refolded, order="sorted") == msgspec.json.encode(stored, order="sorted"))


def _generation(name: str) -> int:
    head, _, tail = name.rpartition("_r")
    return int(tail) if head and tail.isdigit() else 0


__all__ = ["Record", "ReplayError", "Replays"]
