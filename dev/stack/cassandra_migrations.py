"""Schema migrations of the Cassandra serving store: CQL files in migrations/cassandra/
(`NNNN_name.cql`, with a `NNNN_name.rollback.cql` beside each, as the SQL ones of
serving_api/migrations/), applied in order by `shopstream up` once Cassandra answers, and by
`shopstream db migrate-stores`. What was applied is recorded in Cassandra itself
(`shopstream.schema_migrations`), so applying again changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dev.stack.component import ProbeFailed
from dev.stack.errors import StackError
from dev.stack.settings import CassandraSettings, StackSettings
from shopstream.runtime.settings import CASSANDRA_KEYSPACE

KEYSPACE = CASSANDRA_KEYSPACE  # created by the first migration; the record of applied ones lives in it
APPLIED_TABLE = f"{KEYSPACE}.schema_migrations"


def migrations_dir(settings: StackSettings) -> Path:
    return settings.repo / "migrations" / "cassandra"


def read_migrations(folder: Path) -> list[tuple[str, list[str]]]:
    """(id, statements) per migration file, in id order. A file is CQL statements each ended by
    `;` at the end of a line; lines starting with `--` are comments."""
    out = []
    for path in sorted(folder.glob("*.cql")):
        if path.name.endswith(".rollback.cql"):
            continue
        lines = [ln for ln in path.read_text().splitlines() if not ln.strip().startswith("--")]
        statements = [s.strip() for s in "\n".join(lines).split(";\n") if s.strip()]
        out.append((path.stem, [s.removesuffix(";") for s in statements]))
    return out


@contextmanager
def session(cfg: CassandraSettings, timeout: float = 10) -> Iterator[Any]:
    """A driver session on the one node (protocol v5, no keyspace)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=timeout)
    cluster = Cluster(
        [cfg.host],
        port=cfg.port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=min(timeout, 5),
        control_connection_timeout=min(timeout, 5),
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def release_version(cfg: CassandraSettings) -> str:
    """The node's version, once it answers CQL; else ProbeFailed."""
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable

    with _quiet_driver():
        try:
            with session(cfg, timeout=3) as s:
                return str(s.execute("SELECT release_version FROM system.local").one().release_version)
        except (NoHostAvailable, DriverException, OSError) as exc:
            raise ProbeFailed(f"CQL: {exc}") from exc


@contextmanager
def _quiet_driver() -> Iterator[None]:
    """The driver logs a refused connection with its traceback (on stderr, in the middle of `up`'s
    table); a probe of a starting node says what it saw itself."""
    logger = logging.getLogger("cassandra")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def applied_migrations(s: Any) -> set[str]:
    keyspace = s.execute("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", [KEYSPACE])
    if keyspace.one() is None:
        return set()
    _record_table(s)
    return {row.id for row in s.execute(f"SELECT id FROM {APPLIED_TABLE}")}


def apply_cql_migrations(settings: StackSettings) -> list[str]:
    """Apply what is not applied yet, in order; returns the ids. The statements are `IF NOT EXISTS`
    DDL, so a run cut short (or two at once) applies cleanly again."""
    from cassandra import DriverException

    try:
        with session(settings.cassandra, timeout=60) as s:
            done = applied_migrations(s)
            applied = []
            for migration_id, statements in read_migrations(migrations_dir(settings)):
                if migration_id in done:
                    continue
                for statement in statements:
                    s.execute(statement)
                _record_table(s)
                s.execute(
                    f"INSERT INTO {APPLIED_TABLE} (id, applied_at) VALUES (%s, %s)",
                    [migration_id, datetime.now(UTC)],
                )
                applied.append(migration_id)
            return applied
    except DriverException as exc:
        raise StackError(f"CQL migrations ({migrations_dir(settings)}): {exc}") from exc


def _record_table(s: Any) -> None:
    s.execute(f"CREATE TABLE IF NOT EXISTS {APPLIED_TABLE} (id text PRIMARY KEY, applied_at timestamp)")
