"""The raw tables the loader lands into (database `raw`), and the pure mapping of one Kafka record
to one row. Raw tables keep what arrived, typed only as far as deduplication needs; dbt's staging
models give the columns their names and types.

Every raw table is a ReplacingMergeTree whose sorting key is the record's identity, so a record
landed twice (a replay, a redelivery after a crash between insert and offset commit) collapses to
one row: CDC changes are identified by (table key, source LSN), events by event id, revenue window
values by window (the highest version wins)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from shopstream.domain.envelope import epoch_ms
from shopstream.domain.events import EVENT_TYPES

RAW_DATABASE = "raw"
# the OLTP tables Debezium captures (connectors/debezium/oltp-cdc.json), topic `cdc.public.<table>`
CDC_TABLES = (
    "orders",
    "order_items",
    "order_status_history",
    "payments",
    "inventory_adjustment",
    "inventory_stock",
    "products",
    "product_price_history",
)
CDC_TOPIC_PREFIX = "cdc.public."
REVENUE_WINDOW_TOPIC = "ecommerce.analytics.revenue_window.updated.v1"
# the events the services publish through the outbox (the derived ones are the dataflows' outputs)
EVENT_TOPICS = tuple(e.topic for e in EVENT_TYPES if not e.derived)

# where the record came from, and when its row reached the store (the insert's time, set by the engine)
_LANDED = (
    "_topic LowCardinality(String), _partition UInt32, _offset UInt64, _landed_at DateTime64(3, 'UTC') DEFAULT now64(3)"
)

CDC_DDL = f"""CREATE TABLE IF NOT EXISTS {{db}}.cdc_{{table}} (
    pk String COMMENT 'the row key: its one column''s value, or the key columns'' values as a JSON array',
    op LowCardinality(String) COMMENT 'c insert, u update, d delete, r snapshot read',
    lsn UInt64 COMMENT 'Postgres LSN of the change (source.lsn)',
    tx_id Nullable(Int64),
    changed_at DateTime64(3, 'UTC') COMMENT 'commit time in the source (source.ts_ms)',
    deleted UInt8,
    row String COMMENT 'the row after the change (before it, for a delete) as JSON',
    {_LANDED}
) ENGINE = ReplacingMergeTree ORDER BY (pk, lsn, op){{comment}}"""

EVENTS_DDL = f"""CREATE TABLE IF NOT EXISTS {{db}}.events (
    event_id String,
    event_type LowCardinality(String),
    schema_version LowCardinality(String),
    schema_id UInt32,
    partition_key String,
    occurred_at DateTime64(3, 'UTC'),
    producer LowCardinality(String),
    correlation_id String,
    trace_id String,
    payload String COMMENT 'the event payload as JSON',
    {_LANDED}
) ENGINE = ReplacingMergeTree ORDER BY (event_type, event_id){{comment}}"""

REVENUE_WINDOWS_DDL = f"""CREATE TABLE IF NOT EXISTS {{db}}.revenue_windows (
    window_id String,
    currency LowCardinality(String),
    window_size LowCardinality(String) COMMENT 'MINUTE or DAY',
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    amount_minor Int64,
    orders Int64,
    version UInt64 COMMENT 'the dataflow''s change count of the window: the highest is its value',
    final UInt8,
    event_id String,
    {_LANDED}
) ENGINE = ReplacingMergeTree(version) ORDER BY (currency, window_size, window_start){{comment}}"""


def ddl(database: str = RAW_DATABASE, generation: int | None = None) -> list[str]:
    """Every statement that creates the raw layer (idempotent) in `database`; a rebuild's tables
    (`olap.rebuild`) say their generation in their comment, which an EXCHANGE moves with them."""
    comment = "" if generation is None else f" COMMENT 'shopstream generation {int(generation)}'"
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        *(CDC_DDL.format(db=database, table=t, comment=comment) for t in CDC_TABLES),
        EVENTS_DDL.format(db=database, comment=comment),
        REVENUE_WINDOWS_DDL.format(db=database, comment=comment),
    ]


CDC_COLUMNS = (
    "pk",
    "op",
    "lsn",
    "tx_id",
    "changed_at",
    "deleted",
    "row",
    "_topic",
    "_partition",
    "_offset",
)
EVENT_COLUMNS = (
    "event_id", "event_type", "schema_version", "schema_id", "partition_key", "occurred_at", "producer",
    "correlation_id", "trace_id", "payload", "_topic", "_partition", "_offset",
)  # fmt: skip
REVENUE_WINDOW_COLUMNS = (
    "window_id", "currency", "window_size", "window_start", "window_end", "amount_minor", "orders", "version",
    "final", "event_id", "_topic", "_partition", "_offset",
)  # fmt: skip
COLUMNS = {
    **{f"cdc_{t}": CDC_COLUMNS for t in CDC_TABLES},
    "events": EVENT_COLUMNS,
    "revenue_windows": REVENUE_WINDOW_COLUMNS,
}


# what makes two rows one (each table's sorting key: ReplacingMergeTree keeps one row per key),
# which of them is kept (the highest), and what a row says (all but where it came from and, for a
# revenue window, the id of the event that carried the value): what a rebuild's parity compares
IDENTITY: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    **{
        f"cdc_{t}": (("pk", "lsn", "op"), ("_offset",), ("pk", "op", "lsn", "tx_id", "changed_at", "deleted", "row"))
        for t in CDC_TABLES
    },
    "events": (("event_type", "event_id"), ("_offset",), EVENT_COLUMNS[:-3]),
    "revenue_windows": (
        ("currency", "window_size", "window_start"),
        ("version", "_offset"),
        REVENUE_WINDOW_COLUMNS[:-4],
    ),
}


class BadRecord(ValueError):
    """A record that cannot be landed as it is: it goes to the dead-letter topic with this reason."""


INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)
# timestamps the engine's DateTime64(3) holds and Python's datetime can make (years 1900-2262)
EPOCH_MS = (-2_208_988_800_000, 9_224_286_400_000)


@dataclass(frozen=True)
class Origin:
    """Where a record came from: its Kafka position."""

    topic: str
    partition: int
    offset: int

    def columns(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


def cdc_row(table: str, key: bytes | None, value: bytes | None, origin: Origin) -> tuple[Any, ...] | None:
    """A Debezium change record (JSON, schemas off) as a `cdc_<table>` row; None for a tombstone."""
    if value is None:
        return None  # the tombstone after a delete: the delete itself was landed
    try:
        change = json.loads(value)
        keys = json.loads(key) if key is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRecord(f"not JSON: {exc}") from exc
    if not isinstance(change, dict) or not isinstance(change.get("source"), dict):
        raise BadRecord("not a Debezium change event (no source block)")
    op = change.get("op")
    if op not in ("c", "u", "d", "r"):
        raise BadRecord(f"unknown op {op!r}")
    row = change.get("before") if op == "d" else change.get("after")
    if not isinstance(row, dict):
        raise BadRecord(f"op {op} without its row")
    if not isinstance(keys, dict) or not keys:
        raise BadRecord("no record key (the table's primary key)")
    source = change["source"]
    lsn = _int(source.get("lsn"), UINT64, "source.lsn")
    changed_at = _utc(_int(source.get("ts_ms"), EPOCH_MS, "source.ts_ms"))
    tx_id = source.get("txId")
    tx_id = tx_id if isinstance(tx_id, int) and INT64[0] <= tx_id <= INT64[1] else None
    values = list(keys.values())
    # one column: its value as is (what analysts see); several: a JSON array, unambiguous
    pk = str(values[0]) if len(values) == 1 else json.dumps(values, separators=(",", ":"))
    row_json = json.dumps(row, separators=(",", ":"))
    return (pk, op, lsn, tx_id, changed_at, int(op == "d"), row_json, *origin.columns())


def event_row(schema_id: int, event: dict[str, Any], origin: Origin) -> tuple[Any, ...]:
    """A decoded event (envelope + payload) as a `raw.events` row."""
    try:
        return (
            str(event["eventId"]),
            str(event["eventType"]),
            str(event["schemaVersion"]),
            schema_id,
            str(event["partitionKey"]),
            _utc(event["occurredAt"]),
            str(event["producer"]),
            str(event["correlationId"]),
            str(event["traceId"]),
            json.dumps(event["payload"], default=_json_default, separators=(",", ":")),
            *origin.columns(),
        )
    except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise BadRecord(f"not an event envelope: {type(exc).__name__}: {exc}") from exc


def revenue_window_row(event: dict[str, Any], origin: Origin) -> tuple[Any, ...]:
    """A revenue_window.updated event as a `raw.revenue_windows` row."""
    try:
        p = event["payload"]
        return (
            str(p["windowId"]),
            str(p["currency"]),
            str(p["window"]),
            _utc(p["windowStart"]),
            _utc(p["windowEnd"]),
            _int(p["revenue"]["amountMinor"], INT64, "revenue.amountMinor"),
            _int(p["orders"], INT64, "orders"),
            _int(p["version"], UINT64, "version"),
            int(bool(p["final"])),
            str(event["eventId"]),
            *origin.columns(),
        )
    except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise BadRecord(f"not a revenue window: {type(exc).__name__}: {exc}") from exc


def _int(value: Any, bounds: tuple[int, int], name: str) -> int:
    """An integer its column can hold, else BadRecord (an insert that fails would stall the loader)."""
    if not isinstance(value, int) or isinstance(value, bool) or not bounds[0] <= value <= bounds[1]:
        raise BadRecord(f"{name} must be an integer in [{bounds[0]}, {bounds[1]}], got {value!r}")
    return value


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        aware = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return _utc(epoch_ms(aware))  # the same range check as a number
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(_int(value, EPOCH_MS, "timestamp") / 1000, UTC)
    raise TypeError(f"not a timestamp: {value!r}")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
