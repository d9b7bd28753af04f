"""Data-quality suites of the OLAP marts, run with Great Expectations on frames the caller fetched.

Each mart has one expectation suite of the same name. The suites compare the marts with figures
the caller computed from the landed sources (`SourceTruth`): row counts, the currency domain and
the net revenue per currency; the rest are invariants of the marts themselves (unique keys, no
negative stock, net = paid - canceled, one current price version per product).

Everything lives in a file data context under `project_dir` (suites, validation definitions, the
validation results and the Data Docs site), and each run replaces the suites, assets and
validation definitions it finds there, so a run can be repeated in the same directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import great_expectations as gx
import pandas as pd  # type: ignore[import-untyped,unused-ignore]  # no pandas-stubs in the dev extra
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.data_context.data_context.file_data_context import FileDataContext
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.expectations.core.expect_column_pair_values_a_to_be_greater_than_b import (
    ExpectColumnPairValuesAToBeGreaterThanB,
)
from great_expectations.expectations.core.expect_column_pair_values_to_be_equal import ExpectColumnPairValuesToBeEqual
from great_expectations.expectations.core.expect_column_sum_to_be_between import ExpectColumnSumToBeBetween
from great_expectations.expectations.core.expect_column_values_to_be_between import ExpectColumnValuesToBeBetween
from great_expectations.expectations.core.expect_column_values_to_be_in_set import ExpectColumnValuesToBeInSet
from great_expectations.expectations.core.expect_column_values_to_be_unique import ExpectColumnValuesToBeUnique
from great_expectations.expectations.core.expect_column_values_to_not_be_null import ExpectColumnValuesToNotBeNull
from great_expectations.expectations.core.expect_compound_columns_to_be_unique import ExpectCompoundColumnsToBeUnique
from great_expectations.expectations.core.expect_table_row_count_to_equal import ExpectTableRowCountToEqual
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.row_conditions import Column

ORDER_STATUSES = ("PENDING", "PAID", "FULFILLED", "CANCELED")
ADJUSTMENT_REASONS = ("RESERVATION", "RELEASE", "RESTOCK", "SENSOR", "MANUAL", "OTHER", "SHIPMENT")

_DATASOURCE = "shopstream_marts"
_BATCH = "whole_frame"
# Derived column of daily_revenue: GE has no row-wise arithmetic expectation, so the expected net is
# computed here and compared with the mart's own column pairwise.
_PAID_MINUS_CANCELED = "paid_minus_canceled_minor"
_EXAMPLES = 3
_RUN_NAME = "shopstream-quality"


@dataclass(frozen=True)
class SourceTruth:
    """Figures computed by the caller from the landed sources, not from the marts."""

    orders: int
    adjustments: int
    revenue_by_currency: Mapping[str, int]
    currencies: frozenset[str]


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result; `observed` is a short readable observed value or unexpected examples."""

    suite: str
    expectation: str
    column: str | None
    success: bool
    observed: str


@dataclass(frozen=True)
class QualityReport:
    """The outcomes of all suites, and the Data Docs index if it was built."""

    success: bool
    outcomes: tuple[ExpectationOutcome, ...]
    docs_index: Path | None

    def failures(self) -> tuple[ExpectationOutcome, ...]:
        """The outcomes that failed."""
        return tuple(o for o in self.outcomes if not o.success)


def _not_null(*columns: str) -> list[Expectation]:
    return [ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _fact_orders(truth: SourceTruth) -> list[Expectation]:
    return [
        ExpectTableRowCountToEqual(value=truth.orders),
        *_not_null("order_id", "status", "currency", "total_minor", "revenue_minor"),
        ExpectColumnValuesToBeUnique(column="order_id"),
        ExpectColumnValuesToBeInSet(column="currency", value_set=sorted(truth.currencies)),
        ExpectColumnValuesToBeInSet(column="status", value_set=list(ORDER_STATUSES)),
        ExpectColumnValuesToBeBetween(column="total_minor", min_value=0),
        ExpectColumnValuesToBeBetween(column="revenue_minor", min_value=0),
        ExpectColumnPairValuesAToBeGreaterThanB(column_A="total_minor", column_B="revenue_minor", or_equal=True),
    ]


def _fact_inventory_adjustments(truth: SourceTruth) -> list[Expectation]:
    return [
        ExpectTableRowCountToEqual(value=truth.adjustments),
        *_not_null("adjustment_id", "product_id", "reason", "available_after"),
        ExpectColumnValuesToBeUnique(column="adjustment_id"),
        ExpectColumnValuesToBeInSet(column="reason", value_set=list(ADJUSTMENT_REASONS)),
        # no negative stock
        ExpectColumnValuesToBeBetween(column="available_after", min_value=0),
    ]


def _daily_revenue(truth: SourceTruth) -> list[Expectation]:
    # One sum per currency over the rows of that currency: a currency of the domain without any
    # source revenue must sum to 0 in the mart too. GE stores the bounds as floats, which is exact
    # for minor-unit totals below 2**53.
    totals = {c: truth.revenue_by_currency.get(c, 0) for c in truth.currencies | set(truth.revenue_by_currency)}
    return [
        *_not_null("revenue_date", "currency", "net_minor"),
        ExpectColumnValuesToBeInSet(column="currency", value_set=sorted(truth.currencies)),
        ExpectCompoundColumnsToBeUnique(column_list=["revenue_date", "currency"]),
        ExpectColumnPairValuesToBeEqual(column_A="net_minor", column_B=_PAID_MINUS_CANCELED),
        *(
            ExpectColumnSumToBeBetween(
                column="net_minor", min_value=total, max_value=total, row_condition=Column("currency") == currency
            )
            for currency, total in sorted(totals.items())
        ),
    ]


def _dim_product(truth: SourceTruth) -> list[Expectation]:
    return [
        *_not_null("product_key", "product_id", "price_minor", "currency", "is_current"),
        ExpectColumnValuesToBeUnique(column="product_key"),
        ExpectColumnValuesToBeBetween(column="price_minor", min_value=0),
        ExpectColumnValuesToBeInSet(column="currency", value_set=sorted(truth.currencies)),
        ExpectColumnValuesToBeInSet(column="is_current", value_set=[0, 1]),
        # at most one current price version per product
        ExpectColumnValuesToBeUnique(column="product_id", row_condition=Column("is_current") == 1),
    ]


_SUITES: Mapping[str, Callable[[SourceTruth], list[Expectation]]] = {
    "fact_orders": _fact_orders,
    "fact_inventory_adjustments": _fact_inventory_adjustments,
    "daily_revenue": _daily_revenue,
    "dim_product": _dim_product,
}
MARTS = tuple(_SUITES)


def _frame(mart: str, frame: pd.DataFrame) -> pd.DataFrame:
    if mart == "daily_revenue" and {"paid_minor", "canceled_minor"} <= set(frame.columns):
        return frame.assign(**{_PAID_MINUS_CANCELED: frame["paid_minor"] - frame["canceled_minor"]})
    return frame


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    if hasattr(value, "item"):  # numpy scalars would render as np.int64(...)
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def _condition(condition: Any) -> str:
    if isinstance(condition, Mapping) and {"column", "operator", "parameter"} <= condition.keys():
        return f"{condition['column']['name']} {condition['operator']} {_value(condition['parameter'])}"
    return str(condition)


def _observed(result: ExpectationValidationResult) -> str:
    info: Mapping[str, Any] = result.exception_info or {}
    # exception_info is either one record or a record per failed metric
    records: list[Mapping[str, Any]] = [info]
    if "raised_exception" not in info:
        records = [r for r in info.values() if isinstance(r, Mapping)]
    errors = [str(r.get("exception_message")) for r in records if r.get("raised_exception")]
    if errors:
        return "error: " + "; ".join(errors)
    res: Mapping[str, Any] = result.result or {}
    parts: list[str] = []
    if "observed_value" in res:
        parts.append(f"observed {_value(res['observed_value'])}")
    if res.get("unexpected_count"):
        examples: Sequence[Any] = res.get("partial_unexpected_list") or []
        shown = ", ".join(_value(v) for v in examples[:_EXAMPLES])
        parts.append(f"{res['unexpected_count']} of {res.get('element_count')} unexpected, e.g. {shown}")
    condition = result.expectation_config.kwargs.get("row_condition") if result.expectation_config else None
    if condition:
        parts.append(f"where {_condition(condition)}")
    return "; ".join(parts) or ("ok" if result.success else "failed")


def _column(kwargs: Mapping[str, Any]) -> str | None:
    if "column" in kwargs:
        return str(kwargs["column"])
    names: Iterable[Any] = kwargs.get("column_list") or [kwargs[k] for k in ("column_A", "column_B") if k in kwargs]
    return ",".join(str(n) for n in names) or None


def _outcome(suite: str, result: ExpectationValidationResult) -> ExpectationOutcome:
    config = result.expectation_config
    return ExpectationOutcome(
        suite=suite,
        expectation=config.type if config else "unknown",
        column=_column(config.kwargs) if config else None,
        success=bool(result.success),
        observed=_observed(result),
    )


def _context(project_dir: Path) -> FileDataContext:
    context = gx.get_context(mode="file", project_root_dir=project_dir)
    # GX 1.24 has no usage-statistics client left (only this vestigial flag), but set it off so an
    # upgrade that brings one back stays silent; the tqdm bars would only clutter the CLI's output.
    if context.variables.analytics_enabled is not False or context.variables.progress_bars is None:
        context.variables.analytics_enabled = False
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        context.variables.save()
    return context


def _docs_index(urls: Mapping[str, str]) -> Path | None:
    for url in urls.values():
        parsed = urlparse(url)
        if parsed.scheme == "file":
            return Path(unquote(parsed.path))
    return None


def run_quality(
    marts: Mapping[str, pd.DataFrame], truth: SourceTruth, project_dir: Path, *, build_docs: bool = True
) -> QualityReport:
    """Validate the marts against their suites in the GX project at `project_dir`."""
    missing = [m for m in MARTS if m not in marts]
    if missing:
        raise ValueError(f"marts missing: {', '.join(missing)}")
    context = _context(project_dir)
    # Re-creating the data source drops the assets (and batch definitions) of a previous run; the
    # suites and validation definitions are upserted by name.
    datasource = context.data_sources.add_or_update_pandas(name=_DATASOURCE)
    # One run id for the four validations, so that Data Docs shows them as one run.
    run_id = gx.RunIdentifier(run_name=_RUN_NAME, run_time=datetime.now(UTC))
    outcomes: list[ExpectationOutcome] = []
    # mixed suite and result ids, as GX's own UpdateDataDocsAction passes them (the annotation is narrower)
    rendered: list[Any] = []
    for mart in MARTS:
        batch = datasource.add_dataframe_asset(name=mart).add_batch_definition_whole_dataframe(_BATCH)
        suite = context.suites.add_or_update(gx.ExpectationSuite(name=mart, expectations=_SUITES[mart](truth)))
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=mart, data=batch, suite=suite)
        )
        frame = _frame(mart, marts[mart])
        result = validation.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY", run_id=run_id)
        outcomes.extend(_outcome(mart, r) for r in result.results)
        suite_id = ExpectationSuiteIdentifier(name=mart)
        rendered += [suite_id, ValidationResultIdentifier(suite_id, run_id, result.batch_id)]
    # Rendering only this run's pages (and the index) keeps the build from growing with the
    # validation results that pile up in the project over the runs.
    docs_index = _docs_index(context.build_data_docs(resource_identifiers=rendered)) if build_docs else None
    return QualityReport(success=all(o.success for o in outcomes), outcomes=tuple(outcomes), docs_index=docs_index)
