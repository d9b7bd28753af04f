"""The loader's pure parts: a Kafka record to a raw row (or a clear BadRecord, never anything
else), the offsets it commits, the reconciliation's comparison, and what the service hands to dbt."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from olap.builds import BadInvocation, DbtRunner, check_args
from olap.reconcile import compare
from olap.settings import OlapSettings
from olap.tables import (
    CDC_COLUMNS,
    COLUMNS,
    EVENT_COLUMNS,
    REVENUE_WINDOW_COLUMNS,
    BadRecord,
    Origin,
    cdc_row,
    ddl,
    event_row,
    revenue_window_row,
)

ORIGIN = Origin("cdc.public.orders", 2, 41)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


def change(op: str, row: dict[str, Any], lsn: int = 100) -> bytes:
    body = {"before": row if op == "d" else None, "after": None if op == "d" else row, "op": op,
            "source": {"lsn": lsn, "ts_ms": 1_795_749_710_691, "txId": 7}}  # fmt: skip
    return json.dumps(body).encode()


@given(
    op=st.sampled_from(["c", "u", "r", "d"]),
    row=st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=6),
    key=st.dictionaries(st.text(min_size=1, max_size=5), st.integers() | st.text(max_size=10), min_size=1, max_size=3),
    lsn=st.integers(min_value=0, max_value=2**63),
)
def test_a_change_record_becomes_one_row_keyed_by_its_primary_key_and_lsn(
    op: str, row: dict[str, Any], key: dict[str, Any], lsn: int
) -> None:
    out = cdc_row("orders", json.dumps(key).encode(), change(op, row, lsn), ORIGIN)
    assert out is not None and len(out) == len(CDC_COLUMNS)
    fields = dict(zip(CDC_COLUMNS, out, strict=True))
    values = list(key.values())
    assert fields["pk"] == (str(values[0]) if len(values) == 1 else json.dumps(values, separators=(",", ":")))
    assert (fields["op"], fields["lsn"], fields["deleted"]) == (op, lsn, int(op == "d"))
    assert json.loads(fields["row"]) == row  # the row after the change; before it, for a delete
    assert (fields["_topic"], fields["_partition"], fields["_offset"]) == ("cdc.public.orders", 2, 41)
    assert fields["changed_at"] == datetime(2026, 11, 27, 3, 21, 50, 691000, tzinfo=UTC)


def test_a_tombstone_lands_nothing() -> None:
    assert cdc_row("orders", b'{"id": "ORD-1"}', None, ORIGIN) is None


@given(key=st.binary(max_size=40) | st.none(), value=st.binary(max_size=200))
def test_any_bytes_either_land_or_are_a_bad_record(key: bytes | None, value: bytes) -> None:
    with contextlib.suppress(BadRecord):
        cdc_row("orders", key, value, ORIGIN)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"op": "c"}', "no source block"),
        (json.dumps({"op": "x", "source": {}}).encode(), "unknown op"),
        (json.dumps({"op": "c", "after": None, "source": {"lsn": 1, "ts_ms": 1}}).encode(), "without its row"),
        (json.dumps({"op": "c", "after": {}, "source": {"lsn": "1", "ts_ms": 1}}).encode(), "must be an integer"),
    ],
)
def test_malformed_changes_say_what_is_wrong(value: bytes, reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        cdc_row("orders", b'{"id": 1}', value, ORIGIN)


def test_a_change_without_a_key_is_refused() -> None:
    with pytest.raises(BadRecord, match="no record key"):
        cdc_row("orders", None, change("c", {"id": 1}), ORIGIN)


def envelope(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventId": "7f1c1c8e-0000-4000-8000-000000000001",
        "eventType": "ecommerce.order.order.paid.v1",
        "occurredAt": datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        "producer": "order-service",
        "traceId": "t" * 32,
        "correlationId": "corr-1",
        "schemaVersion": "1.0",
        "partitionKey": "ORD-1",
        "payload": payload,
    }


def test_an_event_lands_with_its_envelope_and_its_payload_as_json() -> None:
    paid_at = datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC)
    payload = {"orderId": "ORD-1", "amount": {"amountMinor": 1250, "currency": "USD"}, "paidAt": paid_at}
    row = dict(zip(EVENT_COLUMNS, event_row(12, envelope(payload), ORIGIN), strict=True))
    assert row["event_id"] == "7f1c1c8e-0000-4000-8000-000000000001"
    assert row["schema_id"] == 12 and row["partition_key"] == "ORD-1"
    assert json.loads(row["payload"]) == {**payload, "paidAt": paid_at.isoformat()}


def test_an_event_without_its_envelope_is_a_bad_record() -> None:
    with pytest.raises(BadRecord, match="not an event envelope"):
        event_row(1, {"payload": {}}, ORIGIN)


def test_a_revenue_window_lands_keyed_by_window_with_its_version() -> None:
    start, end = datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC)
    payload = {"windowId": "USD:1d:2026-11-27T00:00:00Z", "currency": "USD", "window": "DAY",
               "windowStart": start, "windowEnd": end, "revenue": {"amountMinor": 999, "currency": "USD"},
               "orders": 3, "version": 5, "final": False}  # fmt: skip
    row = dict(zip(REVENUE_WINDOW_COLUMNS, revenue_window_row(envelope(payload), ORIGIN), strict=True))
    assert (row["amount_minor"], row["orders"], row["version"], row["final"]) == (999, 3, 5, 0)
    with pytest.raises(BadRecord):
        revenue_window_row(envelope({"windowId": "x"}), ORIGIN)


def test_every_raw_table_is_created_deduplicating_and_has_its_columns() -> None:
    statements = ddl()
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS raw"
    for table, columns in COLUMNS.items():
        create = next(s for s in statements if f"raw.{table} (" in s)
        assert "ReplacingMergeTree" in create
        for column in columns:
            assert re.search(rf"[(,]\s+{column} ", create), (table, column)


figures = st.dictionaries(st.text(max_size=3), st.integers(-(10**12), 10**12), max_size=8)


@given(marts=figures, truth=figures)
def test_reconcile_reports_exactly_the_keys_that_differ(marts: dict[str, int], truth: dict[str, int]) -> None:
    differences = compare("c", marts, truth, "pg")
    differing = {k for k in set(marts) | set(truth) if marts.get(k, 0) != truth.get(k, 0)}
    assert {d.key for d in differences} == differing
    assert all(d.marts == marts.get(d.key, 0) and d.truth == truth.get(d.key, 0) for d in differences)
    assert compare("c", marts, dict(marts), "pg") == []


def test_reconcile_sees_one_cent() -> None:
    [d] = compare("revenue", {("2026-11-27", "USD"): 100_000}, {("2026-11-27", "USD"): 100_001}, "windows")
    assert (d.key, d.marts, d.truth) == ("2026-11-27 USD", 100_000, 100_001)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["deps"], "must be one of"),
        ([], "must be one of"),
        (["docs", "serve"], "must be one of"),
        (["show", "--inline", "select 1"], "must be one of"),
        (["build", "--profiles-dir", "/tmp"], "chooses the project"),
        (["build", "--profiles-dir=/tmp"], "chooses the project"),
        (["run", "--target", "server"], "chooses the project"),
        (["build", "--vars", "{calendar_years: 1}"], "not accepted"),
        (["build", "--select", "marts", "extra", "--target-path=/x"], "not accepted"),
    ],
)
def test_the_service_runs_only_its_own_dbt_project_and_target(args: list[str], reason: str) -> None:
    with pytest.raises(BadInvocation, match=reason):
        DbtRunner(OlapSettings()).invoke(args)


@pytest.mark.parametrize(
    "args",
    [["build"], ["test", "--select", "marts", "staging"], ["run", "-s=fact_orders", "--full-refresh"],
     ["docs", "generate"], ["source", "freshness"], ["ls", "--resource-type", "model", "--output", "json"]],
)  # fmt: skip
def test_the_service_accepts_the_usual_dbt_invocations(args: list[str]) -> None:
    check_args(args)


@pytest.mark.parametrize(
    ("source", "value"),
    [("lsn", -1), ("lsn", 2**64), ("lsn", "12"), ("ts_ms", 10**15), ("ts_ms", -(10**14)), ("lsn", True)],
)
def test_values_a_column_cannot_hold_are_bad_records_not_failed_inserts(source: str, value: Any) -> None:
    body = json.loads(change("c", {"id": 1}))
    body["source"][source] = value
    with pytest.raises(BadRecord, match=source):
        cdc_row("orders", b'{"id": 1}', json.dumps(body).encode(), ORIGIN)


def test_an_event_time_out_of_range_is_a_bad_record() -> None:
    with pytest.raises(BadRecord):
        event_row(1, {**envelope({}), "occurredAt": 10**16}, ORIGIN)
