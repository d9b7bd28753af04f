"""A replay's re-seed from Postgres, without a broker: the connector is configured for the signal and
the notifications the replay uses, a Debezium change record decodes to its row, and a stock row
seeds inventory_snapshot's fold with the state its events make — the newer of a row and an event
wins whichever comes first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shopstream.domain import event_type
from shopstream.domain.typed_events import StockAdjusted
from streams import inventory_snapshot
from streams.core import Item, Position, StageRunner, Upsert, run_batch
from streams.replay import reseed
from tests.unit.test_projections import envelope_of

REPO = Path(__file__).resolve().parents[2]
STOCK = event_type("ecommerce.inventory.stock.adjusted.v1")


def test_the_cdc_connector_takes_the_replays_signals_and_writes_its_notifications() -> None:
    config = json.loads((REPO / "connectors" / "debezium" / "oltp-cdc.json").read_text())
    assert config["name"] == reseed.CONNECTOR
    c = config["config"]
    assert c["signal.data.collection"] == f"public.{reseed.SIGNAL_TABLE}"
    assert "source" in c["signal.enabled.channels"].split(",")
    # the connector reads its signals from the log: the table must be captured
    assert f"public.{reseed.SIGNAL_TABLE}" in c["table.include.list"].split(",")
    assert "sink" in c["notification.enabled.channels"].split(",")
    assert c["notification.sink.topic.name"] == reseed.NOTIFICATION_TOPIC
    assert reseed.cdc_topic("inventory_stock") == f"{c['topic.prefix']}.public.inventory_stock"
    # every seed table is one the connector captures
    assert f"public.{inventory_snapshot.SEED_TABLE}" in c["table.include.list"].split(",")


def test_the_signal_table_has_debeziums_three_columns() -> None:
    ddl = (REPO / "serving_api" / "migrations" / "0008_debezium_signal.sql").read_text()
    body = ddl[ddl.index(f"CREATE TABLE {reseed.SIGNAL_TABLE}") :]
    columns = [line.split()[0] for line in body.splitlines()[1:] if line.strip() and not line.startswith(")")]
    assert columns == ["id", "type", "data"]


def cdc_record(row: dict[str, Any] | None, op: str = "r", ts: int = 1_700_000_000_000) -> bytes:
    return json.dumps(
        {"before": None, "after": row, "source": {"ts_ms": ts, "snapshot": "incremental"}, "op": op, "ts_ms": ts}
    ).encode()


ROW = {"product_id": "P-1", "on_hand": 12, "reserved": 2, "version": 5, "updated_at": "2026-12-02T21:50:47.831304Z"}


def test_a_change_record_decodes_to_its_table_and_row() -> None:
    change = reseed.decode("cdc.public.inventory_stock", cdc_record(ROW))
    assert change is not None
    assert (change.table, change.op, change.row, change.changed_at) == ("inventory_stock", "r", ROW, 1_700_000_000_000)
    assert reseed.decode("cdc.public.inventory_stock", None) is None  # a tombstone


def test_a_stock_row_is_the_after_state_of_its_last_event() -> None:
    event = inventory_snapshot.seed(ROW, 1)
    assert isinstance(event, StockAdjusted)
    assert (event.product_id, event.on_hand, event.reserved, event.available, event.stock_version) == (
        "P-1",
        12,
        2,
        10,
        5,
    )
    assert event.delta == 0 and event.envelope.partition_key == "P-1"
    assert event.envelope.event_type == STOCK.name
    # the API stamps the event with the row's updated_at: the same instant, to the millisecond
    assert event.envelope.occurred_at == 1_796_248_247_831
    assert inventory_snapshot.seed({**ROW, "version": 0}, 1) is None  # never adjusted: no event either


def adjusted(version: int, on_hand: int, n: int) -> StockAdjusted:
    return StockAdjusted(
        envelope_of(STOCK, "P-1", 1_000 * version, n), "P-1", 1, "RESTOCK", None, on_hand, on_hand, 0, version
    )


@given(seed_version=st.integers(1, 8), order=st.permutations(range(1, 9)))
def test_the_fold_keeps_the_newest_of_a_seed_row_and_the_events_whatever_comes_first(
    seed_version: int, order: list[int]
) -> None:
    """Events 1..8 (on hand = 10 × version) and the row as of `seed_version`, in any order: the
    snapshot is that of version 8, and the seed row is never folded over a newer state."""
    projection = inventory_snapshot.projection(inventory_snapshot.SETTINGS())
    runners = [StageRunner(s) for s in projection.stages]
    states: list[dict[str, Any]] = [{}]
    row = {**ROW, "on_hand": 10 * seed_version, "reserved": 0, "version": seed_version}
    seeded = inventory_snapshot.seed(row, 1)
    assert seeded is not None
    values: list[Any] = [adjusted(v, 10 * v, v) for v in order]
    values.insert(order.index(seed_version), seeded)  # somewhere among the events
    items = [Item("P-1", v, Position("in[0]", i), v.envelope.occurred_at, 0, "", "") for i, v in enumerate(values)]
    writes = []
    for item in items:  # one batch per item: as they arrive
        writes += run_batch(projection, runners, states, [item])
    snapshot = states[0]["P-1"].state.snapshot
    assert (snapshot.on_hand, snapshot.version) == (80, 8)
    upserts = [w.version for w in writes if isinstance(w, Upsert)]
    assert upserts == sorted(upserts) and upserts[-1] == 8  # never an older state written after a newer


def test_a_delete_has_no_row_to_seed() -> None:
    change = reseed.decode("cdc.public.inventory_stock", cdc_record(None, "d"))
    assert change is not None and change.op == "d" and change.row is None
