"""Reconciliation for auditors: do the marts agree with the OLTP truth (Postgres) and with the
streaming revenue windows, to the cent?

    marts fact_orders      orders per status           == Postgres orders per status
    marts fact_orders      revenue per currency        == Postgres totals of paid/fulfilled orders
    marts daily_revenue    revenue per currency        == Postgres (events-based vs OLTP-based)
    marts daily_revenue    per day and currency        == the revenue_windows dataflow's 1-day windows

Amounts are integer minor units; any difference, of one cent or one order, is reported. The
comparison is only meaningful on a settled pipeline (the loader has landed everything, and the marts
were built after that): the report says when it is not."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from olap.client import OlapClient

PAID_STATUSES = ("PAID", "FULFILLED")

# the marts' side and the streaming side of each check: (key columns..., figure)
_ORDERS_BY_STATUS = "SELECT status, count() FROM analytics.fact_orders GROUP BY status"
_ORDER_REVENUE = (
    "SELECT currency, sum(revenue_minor) FROM analytics.fact_orders WHERE revenue_minor != 0 GROUP BY currency"
)
_DAILY_REVENUE_TOTAL = (
    "SELECT currency, sum(net_minor) AS n FROM analytics.daily_revenue GROUP BY currency HAVING n != 0"
)
_DAILY_REVENUE = "SELECT toString(revenue_date), currency, net_minor FROM analytics.daily_revenue WHERE net_minor != 0"
_DAILY_ORDERS = "SELECT toString(revenue_date), currency, net_orders FROM analytics.daily_revenue WHERE net_orders != 0"
_WINDOWS = "FROM analytics.stg_events__revenue_windows WHERE window_size = 'DAY'"
_WINDOW_REVENUE = f"SELECT toString(window_date), currency, revenue_minor {_WINDOWS} AND revenue_minor != 0"
_WINDOW_ORDERS = f"SELECT toString(window_date), currency, orders {_WINDOWS} AND orders != 0"


@dataclass(frozen=True)
class Difference:
    check: str
    key: str
    marts: int
    truth: int
    truth_source: str


@dataclass
class ReconcileReport:
    checks: dict[str, int] = field(default_factory=dict)  # check -> keys compared
    differences: list[Difference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.differences,
            "checks": self.checks,
            "differences": [asdict(d) for d in self.differences],
            "warnings": self.warnings,
        }

    def summary(self) -> list[str]:
        lines = [f"warning: {w}" for w in self.warnings]
        for check, keys in self.checks.items():
            bad = sum(1 for d in self.differences if d.check == check)
            lines.append(f"{check}: {keys} compared, {'OK' if not bad else f'{bad} DIFFERENT'}")
        return lines


def compare(check: str, marts: Mapping[Hashable, int], truth: Mapping[Hashable, int], source: str) -> list[Difference]:
    """Every key whose figure differs (a key missing on one side counts as 0 there)."""
    out = []
    for key in sorted(set(marts) | set(truth), key=str):
        m, t = int(marts.get(key, 0)), int(truth.get(key, 0))
        if m != t:
            out.append(Difference(check, _key(key), m, t, source))
    return out


def reconcile(olap: OlapClient, postgres_dsn: str, detail_limit: int = 20) -> ReconcileReport:
    """Run every check; the report lists each difference."""
    report = ReconcileReport()
    problem = unsettled(olap)
    if problem:
        report.warnings.append(problem)
    oltp = asyncio.run(_postgres_truth(postgres_dsn))

    def pairs(sql: str) -> dict[Hashable, int]:
        _, rows = olap.query(sql)
        return {(tuple(r[:-1]) if len(r) > 2 else r[0]): int(r[-1]) for r in rows}

    windows = "streaming revenue windows (1 day)"
    oltp_revenue = "postgres orders (PAID, FULFILLED)"
    checks = [
        ("orders by status", pairs(_ORDERS_BY_STATUS), oltp["orders_by_status"], "postgres orders"),
        ("order revenue by currency", pairs(_ORDER_REVENUE), oltp["revenue_by_currency"], oltp_revenue),
        ("daily revenue by currency", pairs(_DAILY_REVENUE_TOTAL), oltp["revenue_by_currency"], oltp_revenue),
        ("daily revenue by day", pairs(_DAILY_REVENUE), pairs(_WINDOW_REVENUE), windows),
        ("daily paid orders by day", pairs(_DAILY_ORDERS), pairs(_WINDOW_ORDERS), windows),
    ]
    for name, marts, truth, source in checks:
        report.checks[name] = len(set(marts) | set(truth))
        report.differences += compare(name, marts, truth, source)
    if any(d.check.startswith("order") for d in report.differences):
        report.differences += _order_details(olap, postgres_dsn, detail_limit)
    return report


def unsettled(olap: OlapClient) -> str | None:
    """Why the marts cannot be judged now (they are behind the sources), or None."""
    status = olap.status()
    loader, dbt = status.get("loader") or {}, status.get("dbt")
    if not loader.get("settled"):
        return f"the loader has not landed everything yet (backlog {loader.get('backlog')})"
    if dbt is None:
        return "no dbt build since the service started"
    if not dbt["success"]:
        return "the last dbt invocation failed"
    if (loader.get("lastBatchAt") or 0) > dbt["startedAt"]:
        return "rows landed after the last dbt build started"
    return None


async def _postgres_truth(dsn: str) -> dict[str, dict[Hashable, int]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot
            by_status = await conn.fetch("SELECT status, count(*) AS n FROM orders GROUP BY status")
            revenue = await conn.fetch(
                "SELECT currency, sum(total_minor) AS n FROM orders WHERE status = ANY($1::text[]) GROUP BY currency",
                list(PAID_STATUSES),
            )
    finally:
        await conn.close()
    return {
        "orders_by_status": {r["status"]: int(r["n"]) for r in by_status},
        "revenue_by_currency": {r["currency"].strip(): int(r["n"]) for r in revenue if int(r["n"])},
    }


def _order_details(olap: OlapClient, dsn: str, limit: int) -> list[Difference]:
    """Which orders differ (status or total), for the first `limit` of them."""

    async def fetch() -> dict[str, tuple[str, int]]:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT id, status, total_minor FROM orders")
        finally:
            await conn.close()
        return {r["id"]: (r["status"], int(r["total_minor"])) for r in rows}

    truth = asyncio.run(fetch())
    _, rows = olap.query("SELECT order_id, status, total_minor FROM analytics.fact_orders")
    marts = {r[0]: (r[1], int(r[2])) for r in rows}
    out: list[Difference] = []
    for order_id in sorted(set(truth) | set(marts)):
        m, t = marts.get(order_id), truth.get(order_id)
        if m == t:
            continue
        if m is None or t is None or m[1] != t[1]:
            out.append(Difference("order total", order_id, m[1] if m else 0, t[1] if t else 0, "postgres orders"))
        else:
            out.append(Difference(f"order status {m[0]} vs {t[0]}", order_id, 0, 0, "postgres orders"))
        if len(out) >= limit:
            break
    return out


def _key(key: Hashable) -> str:
    return " ".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
