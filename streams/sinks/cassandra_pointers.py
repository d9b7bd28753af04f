"""Cassandra's `read_models` (migrations/cassandra/0002_read_models.cql): per logical table, the
physical table that is live. Rows name their table by its logical name; the sink writes, and the
API reads, the physical one. A replay's promotion moves the pointer (`streams.replay.targets`)."""

from __future__ import annotations

from typing import Any

READ_MODELS = "read_models"


def cassandra_tables(session: Any) -> dict[str, str]:
    """logical → physical table, as `read_models` says (a logical name without a row is its own
    physical table; a keyspace from before the pointer table has none)."""
    try:
        rows = session.execute(f"SELECT name, physical FROM {READ_MODELS}")
    except Exception as exc:
        if "unconfigured table" in str(exc).lower():
            return {}
        raise
    return {row.name: row.physical for row in rows}
