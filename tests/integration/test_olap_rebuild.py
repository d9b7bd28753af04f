"""The OLAP landing rebuilt through `shopstream replay ... olap_landing` on the real stack (the
OLAP service carries it out: `olap.rebuild`): a new generation of the raw tables lands the retained
log beside the live one, `verify` proves parity at its offset vector, `promote` swaps the tables
while storefront traffic flows (nothing missed: every Postgres order is in the raw tables after),
the marts still build; a row tampered with in the live store is listed by `verify` and repaired by
`promote --accept-differences`; the OLAP service killed with kill -9 mid-rebuild continues the
rebuild when the process manager starts it again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dev.simulators.storefront import run as simulate
from dev.stack.stack import Stack
from olap.client import OlapClient
from olap.rebuild import NAME
from tests.support import eventually

pytestmark = pytest.mark.stack

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


def replay(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHOPSTREAM, "replay", *args, "--json"], capture_output=True, text=True, timeout=timeout)


def answer(done: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    assert done.returncode == code, f"exit {done.returncode}: {done.stdout[-3000:]} {done.stderr[-3000:]}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def olap(stack: Stack) -> OlapClient:
    client = OlapClient(stack.settings.olap.url)
    # some storefront traffic of its own, landed (the suite's earlier modules add theirs)
    asyncio.run(simulate(stack.settings.api.url, rate=10, duration=6, users=6, products=4, seed=11))
    client.settle(timeout=180)
    return client


FORGE = """
import sys
from datetime import UTC, datetime
import clickhouse_connect
store = clickhouse_connect.get_client(interface="chdb", path=sys.argv[1])
row = ("forged-event", "ecommerce.order.order.created", "1.0", 1, "ORD-x", datetime.now(UTC), "x", "x", "x", "{}",
       sys.argv[2], 0, 0)
store.insert("raw.events", [row], column_names=["event_id", "event_type", "schema_version", "schema_id",
    "partition_key", "occurred_at", "producer", "correlation_id", "trace_id", "payload", "_topic", "_partition",
    "_offset"])
"""


def orders_in_postgres(stack: Stack) -> set[str]:
    async def query() -> set[str]:
        conn = await asyncpg.connect(stack.settings.postgres.dsn)
        try:
            return {str(r["id"]) for r in await conn.fetch("SELECT id FROM orders")}
        finally:
            await conn.close()

    return asyncio.run(query())


def olap_pid(stack: Stack) -> int:
    pid = {s.name: s.pid for s in stack.status()}["olap"]
    assert pid is not None
    return pid


def test_plan_run_verify_and_promote_under_traffic(stack: Stack, olap: OlapClient) -> None:
    plan = answer(replay("plan", NAME))
    assert plan["records"] > 0 and plan["targets"]["clickhouse"] == f"raw_r{plan['generation']}", plan
    built = answer(replay("run", NAME))
    assert built["status"] == "built" and built["generation"] == plan["generation"], built
    assert built["read"] >= plan["records"] and built["writes"] > 0
    checked = answer(replay("verify", NAME))
    assert checked["parity"] is True, json.dumps(checked["stores"])[:3000]
    assert {s["store"] for s in checked["stores"]} >= {"clickhouse events", "clickhouse cdc_orders"}
    assert sum(s["keys"] for s in checked["stores"]) > 0

    # promote while the storefront writes: the loader stands still for the swap and goes on after
    traffic = threading.Thread(
        target=lambda: asyncio.run(simulate(stack.settings.api.url, rate=10, duration=12, users=6, products=4, seed=12))
    )
    traffic.start()
    try:
        time.sleep(3)
        promoted = answer(replay("promote", NAME))
        assert promoted["status"] == "promoted" and promoted["generation"] == built["generation"], promoted
    finally:
        traffic.join(60)
    olap.settle(timeout=180, since=time.time())
    written = orders_in_postgres(stack)

    def missing() -> set[str]:  # the last orders may still be on their way (Debezium, then the loader)
        return written - {r[0] for r in olap.query("SELECT DISTINCT pk FROM raw.cdc_orders")[1]}

    eventually(
        lambda: not missing(),
        120,
        lambda: f"{len(missing())} orders of Postgres not landed after the swap: {sorted(missing())[:5]}",
    )
    tables = {r[0]: r[1] for r in olap.query("SELECT name, comment FROM system.tables WHERE database = 'raw'")[1]}
    assert tables["events"] == f"shopstream generation {built['generation']}"
    status = answer(replay("status", NAME))
    assert status["liveGeneration"] == built["generation"]
    assert olap.dbt("build")["success"]
    answer(replay("drop", NAME, "-g", str(promoted["previous"]["clickhouse"].removeprefix("raw_r"))))


def test_a_tampered_live_row_is_listed_and_repaired_by_a_promotion(stack: Stack, olap: OlapClient) -> None:
    # somebody writes into the live store behind the loader's back: an event no topic holds, at a
    # position below every vector (offset 0 of a landed topic)
    topic = "ecommerce.order.order.created.v1"
    stack.down(["olap"])
    try:  # in a process of its own: the embedded engine is the process's until it ends
        subprocess.run([sys.executable, "-c", FORGE, str(stack.paths.data("olap")), topic], check=True, timeout=120)
    finally:
        stack.up(["olap"])
    built = answer(replay("run", NAME))
    differs = answer(replay("verify", NAME), code=2)
    events = next(s for s in differs["stores"] if s["store"] == "clickhouse events")
    forged = [d for d in events["differences"] if "forged-event" in d["key"]]
    assert forged and forged[0]["shadow"] is None and forged[0]["live"]["producer"] == "x", events
    refused = replay("promote", NAME)
    assert refused.returncode == 1 and "accept-differences" in refused.stdout + refused.stderr
    answer(replay("promote", NAME, "--accept-differences"))
    assert olap.scalar("SELECT count() FROM raw.events WHERE event_id = 'forged-event'") == 0
    # the retired generation holds the forged row until it is dropped
    assert answer(replay("drop", NAME, "-g", str(built["generation"] - 1)))


def test_a_rebuild_cut_off_by_kill_9_of_the_service_continues_after_its_restart(stack: Stack, olap: OlapClient) -> None:
    plan = olap.rebuild_plan()
    # slowed down (to a tenth of the log a second) so that the kill lands mid-rebuild for sure
    started = olap.rebuild_start(max_rate=max(1, plan["records"] // 10))
    n = started["generation"]

    def mine() -> dict[str, Any]:
        return next(r for r in olap.rebuilds()["replays"] if r["generation"] == n)

    eventually(lambda: mine()["records"] >= 0.4 * plan["records"], 120, "the rebuild 40% through")
    assert mine()["status"] == "running", mine()
    before = olap_pid(stack)
    os.kill(before, signal.SIGKILL)
    eventually(lambda: olap_pid(stack) != before, 60, "the OLAP service restarted")
    eventually(lambda: _answers(olap), 120, "the OLAP service answering again")
    # the service continues the rebuild from its progress by itself (`run` would attach to it)
    built = eventually(lambda: mine()["status"] == "built" and mine(), 120, "the rebuild finished")
    # it went on from its progress: starting over would have read the first 40% twice (the
    # block in hand at the kill, a tenth at most, is read again)
    assert plan["records"] <= built["records"] <= 1.2 * plan["records"], (built, plan)
    checked = answer(replay("verify", NAME, "-g", str(n)))
    assert checked["parity"] is True, json.dumps(checked["stores"])[:3000]
    assert answer(replay("drop", NAME, "-g", str(n)))


def _answers(olap: OlapClient) -> bool:
    try:
        olap.rebuilds()
    except RuntimeError:
        return False
    return True
