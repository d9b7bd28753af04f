"""Re-seeding a replay from Postgres, for when the log is not enough (retention cut it, or a new
projection over data older than its topics): Debezium's incremental snapshot.

    shopstream replay run inventory_snapshot --reseed [--since TS]
      -> note where the CDC topics of the projection's seed tables end       # the seed's start
      -> INSERT an execute-snapshot signal into debezium_signal (Postgres)  # migration 0008
      -> the OLTP connector (connectors/debezium/oltp-cdc.json) re-reads the tables in chunks
         beside its streaming and writes every row to cdc.public.<table> as an op "r" record;
         its notifications (topic cdc.notifications) say how far it is, by the signal's id
      -> COMPLETED: wait until those topics stop growing                     # the seed's end
      -> the replay steps the seed's records first — each row made its projection's first-stage
         input by the projection's own rule (`Projection.seeds`) — then the log, which it reads
         up to the vector taken after the snapshot (so the log covers every change the rows show)

A row carries the state's version (inventory_stock.version is the stockVersion of the events),
so the fold keeps the newer of a row and an event whichever comes first: the rebuilt value is the
row's, or a later event's. What a row cannot say (inventory_snapshot's units held by orders, the
dashboard's top products) comes from the part of the log that was read only."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streams.core import parse_partition_name, partition_name

log = logging.getLogger("shopstream.replay")
# the OLTP connector's names (connectors/debezium/oltp-cdc.json; tests check they agree)
CDC_TOPIC = "cdc.public.{}"
NOTIFICATION_TOPIC = "cdc.notifications"
SIGNAL_TABLE = "debezium_signal"
CONNECTOR = "shopstream-oltp-cdc"
# after COMPLETED, the CDC topics unchanged this long: the snapshot's rows are in (at most
# SETTLE_MAX_S: under live writes they keep growing, and newer changes do no harm)
SETTLE_S, SETTLE_MAX_S = 2.0, 10.0


class ReseedError(RuntimeError):
    """The snapshot could not be taken (said to the operator in one line)."""


def cdc_topic(table: str) -> str:
    return CDC_TOPIC.format(table)


@dataclass(frozen=True)
class CdcRow:
    """One CDC record of a seed table: the row after the change (None for a delete)."""

    table: str
    op: str  # r (snapshot read), c, u, d
    row: dict[str, Any] | None
    changed_at: int  # source.ts_ms


def decode(topic: str, value: bytes | None) -> CdcRow | None:
    """A Debezium change record (JSON, no schema) of `cdc.public.<table>`; None for a tombstone."""
    if value is None:
        return None
    change = json.loads(value)
    source = change.get("source") or {}
    return CdcRow(topic.rsplit(".", 1)[-1], change["op"], change.get("after"), int(source.get("ts_ms", 0)))


def end_offsets(c: Consumer, topics: list[str]) -> dict[str, int]:
    out = {}
    metadata = c.list_topics(timeout=10).topics
    for topic in topics:
        found = metadata.get(topic)
        if found is None or found.error is not None:
            raise ReseedError(f"no CDC topic {topic}: is the {CONNECTOR} connector running?")
        for p in sorted(found.partitions):
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            out[partition_name(topic, p)] = int(high)
    return out


def signal_snapshot(dsn: str, tables: list[str], signal_id: str | None = None) -> str:
    """Ask the OLTP connector for an incremental snapshot of `tables`; the signal's id (its
    notifications carry it)."""
    import psycopg

    sid = signal_id or f"reseed-{uuid.uuid4()}"
    data = json.dumps({"data-collections": [f"public.{t}" for t in tables], "type": "incremental"})
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                f"INSERT INTO {SIGNAL_TABLE} (id, type, data) VALUES (%s, 'execute-snapshot', %s)",  # noqa: S608
                (sid, data),
            )
    except psycopg.Error as exc:
        raise ReseedError(
            f"the snapshot signal could not be written to Postgres: {type(exc).__name__}: {exc}"
        ) from None
    log.info("incremental snapshot of %s signalled (%s)", ", ".join(tables), sid)
    return sid


def notifications(bootstrap: str, start: Mapping[str, int], timeout_s: float) -> Iterator[dict[str, Any]]:
    """The connector's notifications from `start` on, until `timeout_s` passes with none that ends it."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "shopstream-replay", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(*parse_partition_name(p), o) for p, o in start.items()])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error() is not None or msg.value() is None:
                continue
            yield json.loads(msg.value())
        raise ReseedError(f"no end of the incremental snapshot within {timeout_s:.0f} s (see {NOTIFICATION_TOPIC})")
    finally:
        c.close()


Progress = Callable[[str], None]


def take_snapshot(
    bootstrap: str, dsn: str, tables: list[str], timeout_s: float = 600.0, progress: Progress | None = None
) -> tuple[str, dict[str, int], dict[str, int]]:
    """Signal a snapshot of `tables` and wait until its rows are in their CDC topics: (signal id,
    the CDC partitions' offsets before it, and after it)."""
    topics = [cdc_topic(t) for t in tables]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "shopstream-replay", "enable.auto.commit": False})
    try:
        start = end_offsets(c, topics)
        notes_from = (
            end_offsets(c, [NOTIFICATION_TOPIC]) if NOTIFICATION_TOPIC in c.list_topics(timeout=10).topics else {}
        )
    finally:
        c.close()
    notes_from = notes_from or {partition_name(NOTIFICATION_TOPIC, 0): 0}
    sid = signal_snapshot(dsn, tables)
    scanned = 0
    for note in notifications(bootstrap, notes_from, timeout_s):
        if note.get("id") != sid or note.get("aggregate_type") != "Incremental Snapshot":
            continue
        kind, extra = note.get("type"), note.get("additional_data") or {}
        if kind == "TABLE_SCAN_COMPLETED":
            if extra.get("status") not in ("SUCCEEDED", "EMPTY"):
                raise ReseedError(f"the snapshot of {extra.get('scanned_collection')} ended {extra.get('status')}")
            scanned += int(extra.get("total_rows_scanned", 0))
        if kind == "ABORTED":
            raise ReseedError(f"the incremental snapshot {sid} was aborted")
        if progress is not None:
            progress(f"{kind.lower() if kind else '?'}: {scanned:,} rows")
        if kind == "COMPLETED":
            break
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "shopstream-replay", "enable.auto.commit": False})
    try:  # the rows go out before the notification, but through another partition: let them land
        end, since = end_offsets(c, topics), time.monotonic()
        cap = since + SETTLE_MAX_S
        while time.monotonic() - since < SETTLE_S and time.monotonic() < cap:
            time.sleep(0.25)
            now = end_offsets(c, topics)
            if now != end:
                end, since = now, time.monotonic()
    finally:
        c.close()
    log.info("incremental snapshot %s done: %d rows scanned, CDC %s -> %s", sid, scanned, start, end)
    return sid, start, end
