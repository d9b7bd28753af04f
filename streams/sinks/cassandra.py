"""The Cassandra sink: a batch's `Row` writes as prepared statements, each `USING TIMESTAMP` its
version, sent concurrently to the replica that owns the row (token-aware), then the source
positions they reflect.

Idempotent by version without a read or a lightweight transaction: Cassandra keeps, per cell, the
write with the highest timestamp, and every write to these tables comes from a sink with its
version as the timestamp. A replayed or reordered batch writes older versions, which lose; a
delete at version v shadows every write up to v and loses to a later one.

The positions go to `projection_progress` (one row per group and input partition, its write timestamp
the offset: a stale writer never moves a position back) only once every row of the batch is
acknowledged, so they never run ahead of the rows. Before writing, the sink reads back the
positions it recorded last: a Cassandra that lost writes (commit log synced every
`commitlog_sync_period`) holds older ones, and `StoreRegressed` stops the engine, whose restart
resumes from the store's positions and writes the lost rows again (`streams.core.resume_from`)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cassandra import DriverException
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent
from cassandra.policies import RoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

from shopstream.runtime.settings import Cassandra
from streams.core import Row, Write, coalesce
from streams.sinks.cassandra_pointers import cassandra_tables
from streams.sinks.redis import StoreRegressed

log = logging.getLogger("shopstream.streams")
PROGRESS_TABLE = "projection_progress"  # (projection: the dataflow's group, partition) -> next_offset
CONCURRENCY = 16  # requests in flight per apply
BATCH = 100  # rows per unlogged batch (one replica's)


class CassandraUnavailable(RuntimeError):
    """Cassandra refused or did not answer a write (the engine stops; supervisord restarts it)."""


class CassandraSink:
    def __init__(
        self, settings: Cassandra, group: str, wait_s: float = 180.0, tables: Mapping[str, str] | None = None
    ) -> None:
        self.group = group
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(RoundRobinPolicy()), request_timeout=max(settings.timeout, 10.0)
        )
        self.cluster = Cluster(
            contact_points=[host for host, _ in settings.hosts()],
            port=settings.hosts()[0][1],
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=settings.timeout * 5,
        )
        self.keyspace = settings.keyspace
        self.statements: dict[tuple[str, tuple[str, ...], bool], PreparedStatement] = {}
        self.session: Session = self._connect(settings.keyspace, wait_s)
        self.read_progress = self.session.prepare(
            f"SELECT partition, next_offset FROM {PROGRESS_TABLE} WHERE projection = ?"
        )
        self.write_progress = self.session.prepare(
            f"INSERT INTO {PROGRESS_TABLE} (projection, partition, next_offset) VALUES (?, ?, ?) USING TIMESTAMP ?"
        )
        self.wrote: dict[str, int] = {}  # partition → the last position this sink recorded
        self.changed = 0  # rows written (Cassandra does not say which ones were newer)
        # a Row names its table by its logical name; the physical one is what `read_models`
        # points at, read again before each batch of rows (a replay's promotion moves it while the
        # dataflow is paused, `streams.replay`: the first rows after the pause go to the new
        # table), or what `tables` says (a replay's shadow)
        self.follow = tables is None
        self.tables = cassandra_tables(self.session) if tables is None else dict(tables)

    def _connect(self, keyspace: str, wait_s: float) -> Session:
        """A session on the keyspace once it exists with its progress table: a dataflow started
        with Cassandra (whose migrations `up` applies once it answers) waits for them, up to
        `wait_s`, instead of crashing until its supervisor gives up."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                session = self.cluster.connect(keyspace)
                session.execute(f"SELECT projection FROM {PROGRESS_TABLE} LIMIT 1")
                return session
            except (NoHostAvailable, DriverException) as exc:
                if time.monotonic() > deadline:
                    raise CassandraUnavailable(
                        f"Cassandra keyspace {keyspace} with {PROGRESS_TABLE} not there after {wait_s:.0f} s: {exc}"
                    ) from exc
                log.info("waiting for Cassandra's keyspace %s (%s)", keyspace, type(exc).__name__)
                time.sleep(2)

    def progress(self) -> dict[str, int]:
        rows = self.session.execute(self.read_progress, (self.group,))
        return {row.partition: int(row.next_offset) for row in rows}

    def apply(self, writes: Sequence[Write], progress: Mapping[str, int]) -> int:
        rows = [w for w in coalesce([w for w in writes if type(w) is Row]) if isinstance(w, Row)]
        if not rows and not progress:
            return self.changed
        try:
            if self.wrote:
                held = self.progress()
                behind = {p: (held.get(p, -1), at) for p, at in self.wrote.items() if held.get(p, -1) < at}
                if behind:
                    raise StoreRegressed(f"Cassandra lost writes: it holds {behind} (held, written) for {self.group}")
            if self.follow and rows:
                pointed = cassandra_tables(self.session)
                if pointed != self.tables:
                    log.info("Cassandra read models now %s (were %s)", pointed, self.tables)
                    self.tables, self.statements = pointed, {}
            by_statement: dict[tuple[str, tuple[str, ...], bool], list[tuple[Any, ...]]] = {}
            for row in rows:
                names = tuple(k for k, _ in row.key)
                if row.delete:
                    shape = (row.table, names, True)
                    params = (row.version, *(v for _, v in row.key))
                else:
                    columns = names + tuple(row.values)
                    shape = (row.table, columns, False)
                    params = (*(v for _, v in row.key), *row.values.values(), row.version)
                by_statement.setdefault(shape, []).append(params)
            for shape, batch in by_statement.items():
                self._execute(self._statement(*shape), batch)
            if progress:
                positions = [(self.group, p, offset, offset) for p, offset in progress.items()]
                self._execute(self.write_progress, positions)
                self.wrote.update(progress)
        except DriverException as exc:
            raise CassandraUnavailable(f"Cassandra: {type(exc).__name__}: {exc}") from exc
        self.changed += len(rows)
        return self.changed

    def _statement(self, table: str, columns: tuple[str, ...], delete: bool) -> PreparedStatement:
        found = self.statements.get((table, columns, delete))
        if found is None:
            physical = self.tables.get(table, table)
            if delete:
                where = " AND ".join(f"{c} = ?" for c in columns)
                cql = f"DELETE FROM {physical} USING TIMESTAMP ? WHERE {where}"
            else:
                marks = ", ".join("?" for _ in columns)
                cql = f"INSERT INTO {physical} ({', '.join(columns)}) VALUES ({marks}) USING TIMESTAMP ?"
            found = self.statements[(table, columns, delete)] = self.session.prepare(cql)
        return found

    def _execute(self, statement: PreparedStatement, params: list[tuple[Any, ...]]) -> None:
        """Bound statements grouped by the replica that owns their partition (token-aware), sent
        as unlogged batches of up to BATCH rows, the batches concurrently. An unlogged batch of
        one replica's rows is one request that replica applies without coordinating others."""
        by_replica: dict[Any, list[BoundStatement]] = {}
        metadata = self.cluster.metadata
        for values in params:
            bound = statement.bind(values)
            replicas = metadata.get_replicas(self.keyspace, bound.routing_key) if bound.routing_key else []
            by_replica.setdefault(replicas[0] if replicas else None, []).append(bound)
        batches = []
        for statements in by_replica.values():
            for start in range(0, len(statements), BATCH):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for bound in statements[start : start + BATCH]:
                    batch.add(bound)
                batches.append(batch)
        results = execute_concurrent(
            self.session, [(b, ()) for b in batches], concurrency=CONCURRENCY, raise_on_first_error=False
        )
        failed = [result for ok, result in results if not ok]
        if failed:
            raise CassandraUnavailable(f"Cassandra refused {len(failed)} of {len(batches)} batches: {failed[0]!r}")

    def forget(self, partitions: Sequence[str]) -> None:
        """Partitions this process no longer reads (a rebalance): another may write them."""
        for p in partitions:
            self.wrote.pop(p, None)

    def close(self) -> None:
        with contextlib.suppress(DriverException):
            self.cluster.shutdown()
