"""Payments (issue 8): latency of one payment call through the adapter, as the API makes it, against
the stack's gateway processes — through SOAP (zeep -> the legacy spyne gateway), through the REST
fallback with the breaker open, and through the fallback once SOAP is exhausted (nothing listening:
5 refused attempts with the real jittered backoff between them)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from serving_api.payments import PaymentAdapter, build_adapter  # noqa: E402
from serving_api.settings import ApiSettings  # noqa: E402
from shopstream.domain import Money  # noqa: E402

console = Console()
AMOUNT = Money(2500, "USD")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(adapter: PaymentAdapter, calls: int, expect: str) -> list[float]:
    """`calls` sequential captures of new orders (ms each); every one must be answered by `expect`."""
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        outcome = await adapter.capture(f"ORD-B{uuid.uuid4().hex[:12]}", AMOUNT)
        out.append((time.perf_counter() - started) * 1000)
        assert outcome.approved and outcome.gateway == expect, outcome
    return out


async def measure(settings: ApiSettings, calls: int, exhausted_calls: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    soap = build_adapter(settings)
    try:
        await timed(soap, 20, "soap-legacy")  # warm up: the WSDL, connections
        results["SOAP (breaker closed)"] = await timed(soap, calls, "soap-legacy")
        soap.breaker.open()  # forced open: every call goes straight to REST
        await timed(soap, 20, "rest-sim")
        results["REST fallback (breaker open)"] = await timed(soap, calls, "rest-sim")
    finally:
        await soap.close()
    # SOAP down: a breaker that never opens, so every call pays for the five attempts and the backoff
    down = build_adapter(settings.model_copy(update={"soap_payment_port": 1, "payment_breaker_fail_max": 10**9}))
    try:
        results["REST fallback (SOAP down, 5 attempts exhausted)"] = await timed(down, exhausted_calls, "rest-sim")
    finally:
        await down.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--exhausted-calls", type=int, default=30)
    args = parser.parse_args()
    api = StackSettings().api
    settings = ApiSettings(
        payment_gateway={"host": api.host, "port": api.payment_port},
        legacy_payment_gateway={"host": api.host, "port": api.soap_payment_port},
    )
    with console.status("payments: measuring"):
        results = asyncio.run(measure(settings, args.calls, args.exhausted_calls))
    rows = [
        f"| {path} | {len(ms)} | {statistics.median(ms):.1f} | {pct(ms, 0.99):.1f} | {max(ms):.1f} |"
        for path, ms in results.items()
    ]
    body = "\n".join(
        [
            "## Payments (issue 8)",
            "",
            f"Conditions: {conditions()}. One payment adapter in the bench process, sequential calls "
            "(closed loop, one at a time) of new order ids against the stack's gateway processes: the "
            "legacy SOAP gateway (spyne, threaded wsgiref server, a new connection per request) and the "
            "REST one (uvicorn); the rest of the stack idle. The adapter as the API builds it (SOAP timeout "
            f"{settings.payment_soap_timeout:g} s, {settings.payment_soap_attempts} attempts, backoff base "
            f"{settings.payment_backoff_base:g} s full jitter); no database work (the order service adds its "
            "transaction around this call).",
            "",
            "| path | calls | p50 ms | p99 ms | max ms |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "SOAP down without an open breaker is what one payment costs before the breaker opens (it "
            "opens after 10 failed attempts in a row, i.e. two such payments): mostly the backoff "
            "waits (up to 0.1+0.2+0.4+0.8 s).",
        ]
    )
    write_section(args.report, "payments", body)
    console.print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
