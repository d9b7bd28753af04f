"""The marts' data-quality suites: consistent frames pass, and each kind of defect fails the right expectation."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped,unused-ignore]  # no pandas-stubs in the dev extra
import pytest

from olap.quality import ExpectationOutcome, QualityReport, SourceTruth, run_quality

TRUTH = SourceTruth(
    orders=4,
    adjustments=4,
    revenue_by_currency={"USD": 3000, "EUR": 500},
    currencies=frozenset({"USD", "EUR", "GBP"}),
)


def _marts() -> dict[str, pd.DataFrame]:
    """Small marts consistent with TRUTH: two paid USD orders, one paid EUR order, one canceled USD order."""
    t = datetime(2026, 3, 1, 12, 0)
    d = date(2026, 3, 1)
    nat = pd.NaT
    fact_orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "customer_id": ["alice", "bob", "alice", "bob"],
            "status": ["PAID", "FULFILLED", "PAID", "CANCELED"],
            "currency": ["USD", "USD", "EUR", "USD"],
            "total_minor": pd.array([1000, 2000, 500, 700], dtype="int64"),
            "lines": [1, 2, 1, 1],
            "units": [1, 3, 1, 2],
            "created_at": [t] * 4,
            "paid_at": [t, t, t, nat],
            "canceled_at": [nat, nat, nat, t],
            "fulfilled_at": [nat, t, nat, nat],
            "order_date": [d] * 4,
            "revenue_minor": pd.array([1000, 2000, 500, 0], dtype="int64"),
        }
    )
    adjustments = pd.DataFrame(
        {
            "adjustment_id": pd.array([1, 2, 3, 4], dtype="int64"),
            "product_id": ["p1", "p1", "p2", "p1"],
            "delta": [10, -2, 5, 2],
            "reason": ["RESTOCK", "RESERVATION", "RESTOCK", "RELEASE"],
            "order_id": [None, "o1", None, "o4"],
            "adjusted_at": [t] * 4,
            "adjustment_date": [d] * 4,
            "available_after": pd.array([10, 8, 5, 10], dtype="int64"),
        }
    )
    daily_revenue = pd.DataFrame(
        {
            "revenue_date": [d, d],
            "currency": ["EUR", "USD"],
            "paid_minor": pd.array([500, 3700], dtype="int64"),
            "canceled_minor": pd.array([0, 700], dtype="int64"),
            "net_minor": pd.array([500, 3000], dtype="int64"),
            "paid_orders": pd.array([1, 3], dtype="int64"),
            "canceled_orders": pd.array([0, 1], dtype="int64"),
            "net_orders": pd.array([1, 2], dtype="int64"),
        }
    )
    dim_product = pd.DataFrame(
        {
            "product_key": ["p1:1", "p1:2", "p2:1"],
            "product_id": ["p1", "p1", "p2"],
            "sku": ["SKU-1", "SKU-1", "SKU-2"],
            "name": ["Mug", "Mug", "Cap"],
            "category": ["kitchen", "kitchen", "apparel"],
            "price_version": [1, 2, 1],
            "price_minor": pd.array([900, 1000, 500], dtype="int64"),
            "currency": ["USD", "USD", "EUR"],
            "valid_from": [t, t, t],
            "valid_to": [t, nat, nat],
            "is_current": [0, 1, 1],
        }
    )
    return {
        "fact_orders": fact_orders,
        "fact_inventory_adjustments": adjustments,
        "daily_revenue": daily_revenue,
        "dim_product": dim_product,
    }


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Records (and refuses) any connection or name lookup, so a phone-home attempt fails the test."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network disabled in unit tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == []


def _failures(report: QualityReport) -> list[tuple[str, str, str | None]]:
    return [(f.suite, f.expectation, f.column) for f in report.failures()]


def _only_failure(report: QualityReport) -> ExpectationOutcome:
    assert not report.success
    [failure] = report.failures()
    return failure


def test_consistent_marts_pass_and_build_docs(tmp_path: Path) -> None:
    report = run_quality(_marts(), TRUTH, tmp_path)
    assert report.success, report.failures()
    assert report.failures() == ()
    assert {o.suite for o in report.outcomes} == {
        "fact_orders",
        "fact_inventory_adjustments",
        "daily_revenue",
        "dim_product",
    }
    assert report.docs_index is not None and report.docs_index.is_file()
    assert report.docs_index.is_relative_to(tmp_path)
    for suite in ("fact_orders", "fact_inventory_adjustments", "daily_revenue", "dim_product"):
        assert len(list((report.docs_index.parent / "validations" / suite).rglob("*.html"))) == 1


def test_rerun_in_the_same_project_replaces_everything(tmp_path: Path) -> None:
    assert run_quality(_marts(), TRUTH, tmp_path, build_docs=False).success
    # a second run with different truth must validate against the new suites, not stale ones
    report = run_quality(_marts(), SourceTruth(5, 4, TRUTH.revenue_by_currency, TRUTH.currencies), tmp_path)
    assert _failures(report) == [("fact_orders", "expect_table_row_count_to_equal", None)]
    assert report.docs_index is not None and report.docs_index.is_file()


def test_negative_stock_fails(tmp_path: Path) -> None:
    marts = _marts()
    marts["fact_inventory_adjustments"].loc[1, "available_after"] = -3
    failure = _only_failure(run_quality(marts, TRUTH, tmp_path, build_docs=False))
    assert (failure.suite, failure.expectation, failure.column) == (
        "fact_inventory_adjustments",
        "expect_column_values_to_be_between",
        "available_after",
    )
    assert "-3" in failure.observed


def test_unknown_currency_fails(tmp_path: Path) -> None:
    marts = _marts()
    marts["fact_orders"].loc[2, "currency"] = "JPY"
    failure = _only_failure(run_quality(marts, TRUTH, tmp_path, build_docs=False))
    assert (failure.suite, failure.expectation, failure.column) == (
        "fact_orders",
        "expect_column_values_to_be_in_set",
        "currency",
    )
    assert "'JPY'" in failure.observed


@pytest.mark.parametrize("mart", ["fact_orders", "fact_inventory_adjustments"])
def test_row_count_off_by_one_fails(tmp_path: Path, mart: str) -> None:
    marts = _marts()
    marts[mart] = marts[mart].iloc[:-1]
    failure = _only_failure(run_quality(marts, TRUTH, tmp_path, build_docs=False))
    assert (failure.suite, failure.expectation, failure.column) == (mart, "expect_table_row_count_to_equal", None)
    assert failure.observed == "observed 3"


def test_revenue_total_off_by_one_cent_fails(tmp_path: Path) -> None:
    marts = _marts()
    revenue = marts["daily_revenue"]
    # consistent per row (net = paid - canceled), so only the per-currency total against the sources fails
    revenue.loc[1, ["paid_minor", "net_minor"]] = [3699, 2999]
    failure = _only_failure(run_quality(marts, TRUTH, tmp_path, build_docs=False))
    assert (failure.suite, failure.expectation, failure.column) == (
        "daily_revenue",
        "expect_column_sum_to_be_between",
        "net_minor",
    )
    assert failure.observed == "observed 2999; where currency == 'USD'"


def test_net_not_paid_minus_canceled_fails(tmp_path: Path) -> None:
    marts = _marts()
    marts["daily_revenue"].loc[0, "canceled_minor"] = 1
    failure = _only_failure(run_quality(marts, TRUTH, tmp_path, build_docs=False))
    assert (failure.suite, failure.expectation, failure.column) == (
        "daily_revenue",
        "expect_column_pair_values_to_be_equal",
        "net_minor,paid_minus_canceled_minor",
    )


def test_two_current_price_versions_fail(tmp_path: Path) -> None:
    marts = _marts()
    marts["dim_product"].loc[0, "is_current"] = 1
    failure = _only_failure(run_quality(marts, TRUTH, tmp_path, build_docs=False))
    assert (failure.suite, failure.expectation, failure.column) == (
        "dim_product",
        "expect_column_values_to_be_unique",
        "product_id",
    )
    assert "where is_current == 1" in failure.observed


def test_missing_mart_is_an_error(tmp_path: Path) -> None:
    marts = _marts()
    del marts["dim_product"]
    with pytest.raises(ValueError, match="dim_product"):
        run_quality(marts, TRUTH, tmp_path)
