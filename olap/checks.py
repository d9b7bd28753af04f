"""`shopstream olap check`: the marts, fetched from the OLAP service, against the data-quality
suites (`quality`), with the figures they must match computed from the raw landed tables — not
from the marts or any dbt model, so a bug in a model cannot hide itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from olap.client import OlapClient
from olap.quality import MARTS, QualityReport, SourceTruth, run_quality

# the latest change per key (Kafka order, as dbt's cdc_current), deletes left out: the rows a CDC table has now
_CURRENT = "SELECT pk FROM raw.{table} GROUP BY pk HAVING argMax(deleted, (_offset, lsn)) = 0"

# net revenue per currency straight from the landed events: each order's first payment, minus it
# again when the order was canceled (after or before the payment was read: the order is not paid)
_REVENUE = """
WITH events AS (
    SELECT event_type, JSONExtractString(payload, 'orderId') AS order_id, occurred_at, payload
    FROM raw.events FINAL
    WHERE event_type IN ('ecommerce.order.order.paid.v1', 'ecommerce.order.order.canceled.v1')
),
paid AS (
    SELECT order_id,
           argMin(JSONExtractString(payload, 'amount', 'currency'), occurred_at) AS currency,
           argMin(JSONExtractInt(payload, 'amount', 'amountMinor'), occurred_at) AS amount
    FROM events WHERE event_type = 'ecommerce.order.order.paid.v1' GROUP BY order_id
),
canceled AS (SELECT DISTINCT order_id FROM events WHERE event_type = 'ecommerce.order.order.canceled.v1')
SELECT currency, sum(amount) FROM paid WHERE order_id NOT IN (SELECT order_id FROM canceled) GROUP BY currency
"""


def source_truth(olap: OlapClient, currencies: frozenset[str]) -> SourceTruth:
    """What the marts must add up to, from the raw tables."""
    _, revenue = olap.query(_REVENUE)
    return SourceTruth(
        orders=int(olap.scalar(f"SELECT count() FROM ({_CURRENT.format(table='cdc_orders')})")),
        adjustments=int(olap.scalar(f"SELECT count() FROM ({_CURRENT.format(table='cdc_inventory_adjustment')})")),
        revenue_by_currency={str(c): int(n) for c, n in revenue if int(n)},
        currencies=currencies,
    )


def mart_frames(olap: OlapClient) -> dict[str, Any]:
    """Each mart the suites validate, whole, as a DataFrame."""
    frames = {}
    for mart in MARTS:
        frame = olap.frame(f"SELECT * FROM analytics.{mart}")
        for column in frame.columns:  # LowCardinality arrives as pandas categoricals
            if str(frame[column].dtype) == "category":
                frame[column] = frame[column].astype(object)
        frames[mart] = frame
    return frames


def run_checks(olap: OlapClient, currencies: frozenset[str], project_dir: Path) -> QualityReport:
    """Validate the marts as they are now; Data Docs go to `project_dir`."""
    truth = source_truth(olap, currencies)
    return run_quality(mart_frames(olap), truth, project_dir)
