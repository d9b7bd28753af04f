"""The replay service on real Kafka and Redis, with live dataflows of the test's own (topics with a
prefix, their own group, Redis database and state) on both engines:

- a paused dataflow stops reading, answers with the offset vector its stores reflect, writes
  nothing more while paused, and goes on once released (`streams.pause`) — also a two-stage one
  on Quix, whose second stage must first take what the first forwarded;
- `shopstream replay run` then `verify` beside a live dataflow is 100% parity on either engine,
  with more records arriving while it runs;
- a replay killed with SIGKILL mid-run, run again, ends with the values of an uninterrupted run;
- a promotion cut off after its Redis swap, run again, finishes (it does not refuse the generation
  as "live already")."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Producer

from dev.stack.stack import Stack
from shopstream.serde import AvroSerde
from streams import pause
from streams.replay import targets
from streams.replay.service import Replays
from tests.integration.flows import ENGINES, SHOPSTREAM, FlowProcess, produce
from tests.integration.test_dataflows import (
    ADJUSTED,
    DAY,
    MINUTE,
    a_currency,
    produce_order_event,
    topics_of_our_own,
)
from tests.support import eventually, stock_adjusted


def replay(flow: FlowProcess, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`shopstream replay ... --json` with the flow's settings (its topics, group, Redis db, state)."""
    return subprocess.run(
        [SHOPSTREAM, "replay", *args, "--json"], env=flow.env, capture_output=True, text=True, timeout=timeout
    )


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, f"exit {done.returncode}: {done.stdout[-2000:]} {done.stderr[-3000:]}"
    return json.loads(done.stdout)


def revenue_log(producer: Producer, serde: AvroSerde, prefix: str, n: int, seed: int, hour: int = 1) -> None:
    """`n` orders paid over an hour of yesterday (`hour`), in time order give or take 2 s (within
    the grace period: which records a window counts as late depends on when an engine read them,
    which the log does not say), a quarter of them canceled a little later."""
    rnd = random.Random(seed)
    currency = a_currency()
    start = (int(time.time() * 1000) - DAY) // DAY * DAY + hour * 3_600_000
    for i in range(n):
        order, at = f"ORD-{seed}-{i}", start + i * (60 * MINUTE // n) + rnd.randrange(2_000)
        amount = rnd.randrange(100, 10_000)
        produce_order_event(producer, serde, currency, "paid", order, amount, at, prefix)
        if rnd.random() < 0.25:
            produce_order_event(producer, serde, currency, "canceled", order, amount, at + rnd.randrange(2_000), prefix)
    assert producer.flush(30) == 0


def stock_log(producer: Producer, serde: AvroSerde, prefix: str, products: int, versions: int) -> None:
    now = int(time.time() * 1000)
    for v in range(1, versions + 1):
        for p in range(products):
            produce(producer, serde, ADJUSTED, stock_adjusted(f"P-{p}", 1, "RESTOCK", v, 0, v), now + v, prefix)
        producer.poll(0)
    assert producer.flush(60) == 0


def recorded(flow: FlowProcess) -> dict[str, int]:
    return {k: int(v) for k, v in flow.cache.hgetall(f"streams:progress:{flow.group}").items()}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_paused_dataflow_answers_with_its_positions_writes_nothing_more_and_goes_on_when_released(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path, flows: list[FlowProcess], engine: str
) -> None:
    """revenue_windows: two stages (per order, then per currency), so on Quix the pause must also
    wait for the repartition topic's records before it answers."""
    prefix = topics_of_our_own(stack, "pause")
    flow = FlowProcess(stack, tmp_path, "revenue_windows", engine, prefix, db=4)
    flows.append(flow)
    flow.cache.flushdb()
    revenue_log(producer, serde, prefix, 200, seed=1)
    flow.start()
    eventually(lambda: flow.values("revenue:1d:*"), timeout=90, what="the first windows")
    request = pause.request_pause(flow.cache, flow.group)
    try:
        vector, ticks = pause.wait_paused(flow.cache, flow.group, request, 60)
        assert ticks is (engine == "bytewax")
        held = flow.values("revenue:*")
        # everything it read is in its windows: more orders now are not read while paused
        revenue_log(producer, serde, prefix, 50, seed=2)
        time.sleep(3)
        assert flow.running(), flow.tail()
        assert flow.values("revenue:*") == held
        assert pause.wait_paused(flow.cache, flow.group, request, 1).positions == vector
    finally:
        pause.release(flow.cache, flow.group)
    assert sum(vector.values()) > 0
    eventually(lambda: flow.values("revenue:*") != held, timeout=60, what="the windows moving on once released")


# (Quix turns a window final only when a later record comes, so which windows are final depends on
# when records arrived: a replay closes them as an engine with timers does, and is compared with one)
@pytest.mark.parametrize(("engine", "name"), [("bytewax", "revenue_windows"), ("quix", "inventory_snapshot")])
def test_run_then_verify_beside_a_live_dataflow_is_full_parity_with_records_still_arriving(
    stack: Stack,
    producer: Producer,
    serde: AvroSerde,
    tmp_path: Path,
    flows: list[FlowProcess],
    engine: str,
    name: str,
) -> None:
    prefix = topics_of_our_own(stack, "rv")
    # Redis only: the test's own database holds both generations
    # revenue: a grace longer than the log's disorder, so that no record is late. Which ones are
    # late depends on the order the engine read the partitions in, which the log does not hold.
    grace = {"grace_ms": str(10 * MINUTE)} if name == "revenue_windows" else {}
    flow = FlowProcess(stack, tmp_path, name, engine, prefix, db=5, stores='["redis"]', **grace)
    flows.append(flow)
    flow.cache.flushdb()
    if name == "revenue_windows":
        revenue_log(producer, serde, prefix, 400, seed=3)
    else:
        stock_log(producer, serde, prefix, products=200, versions=5)
    flow.start()
    built = answer(replay(flow, "run", name))
    assert built["status"] == "built" and built["read"] > 0 and built["writes"] > 0
    # more arrives after the run: verify brings the shadow to exactly where the live one is
    if name == "revenue_windows":  # the next hour: on time (a late record's fate depends on when it is read)
        revenue_log(producer, serde, prefix, 100, seed=4, hour=2)
    else:
        stock_log(producer, serde, prefix, products=220, versions=1)
    checked = answer(replay(flow, "verify", name))
    assert checked["parity"] is True, json.dumps(checked["stores"])[:3000]
    (store,) = checked["stores"]
    assert store["store"] == "redis" and store["keys"] > 0 and store["differing"] == 0
    assert flow.running(), flow.tail()
    # tampered: found, with both values
    key = next(iter(flow.values("revenue:1d:*" if name == "revenue_windows" else "inventory:P-*")))
    field = "amountMinor" if name == "revenue_windows" else "available"
    flow.cache.hset(key, field, "123456789")
    found = replay(flow, "verify", name)
    assert found.returncode == 2, found.stderr[-2000:]
    report = json.loads(found.stdout)
    assert report["parity"] is False
    (difference,) = report["stores"][0]["differences"]
    assert difference["key"] == key
    assert difference["live"]["value"][field] == "123456789"
    assert difference["shadow"]["value"][field] != "123456789"


def test_a_replay_killed_with_sigkill_continues_to_the_result_of_an_uninterrupted_one(
    stack: Stack, producer: Producer, serde: AvroSerde, tmp_path: Path
) -> None:
    prefix = topics_of_our_own(stack, "kill")
    flow = FlowProcess(
        stack,
        tmp_path,
        "inventory_snapshot",
        "bytewax",
        prefix,
        db=6,
        stores='["redis"]',
        replay_checkpoint_interval="0.2",
    )
    flow.cache.flushdb()
    stock_log(producer, serde, prefix, products=2_000, versions=40)  # 80,000 records
    root = tmp_path / f"state-{flow.group}" / "replay" / flow.group
    argv = [SHOPSTREAM, "replay", "run", "inventory_snapshot", "--json"]
    with (tmp_path / "killed.log").open("w") as log:
        killed = subprocess.Popen(argv, env=flow.env, stdout=subprocess.DEVNULL, stderr=log)
    checkpoint = root / "r1" / "checkpoint.msgpack"
    eventually(lambda: checkpoint.exists() or killed.poll() is not None, timeout=120, what="a first checkpoint")
    assert killed.poll() is None, "the run ended before it could be killed: make the log longer"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(10)
    record = json.loads((root / "r1" / "replay.json").read_text())
    assert record["status"] == "running"
    resumed = answer(replay(flow, "run", "inventory_snapshot"))
    assert resumed["generation"] == 1 and resumed["status"] == "built"
    assert resumed["read"] >= 80_000  # it went on from its checkpoint (records after it read again)
    uninterrupted = answer(replay(flow, "run", "inventory_snapshot"))
    assert uninterrupted["generation"] == 2 and uninterrupted["read"] == 80_000
    assert generation_values(flow.cache, flow.group, 1) == generation_values(flow.cache, flow.group, 2)
    # the products, the top-products ranking and its versions, the low-stock ranking's versions (none is low)
    assert len(generation_values(flow.cache, flow.group, 1)) == 2_000 + 3
    snapshot = flow.cache.hgetall(f"replay:{flow.group}:r1:inventory:P-7")
    assert snapshot["version"] == "40" and snapshot["onHand"] == "40"


def test_a_promotion_cut_off_after_its_redis_swap_finishes_when_run_again(
    stack: Stack,
    producer: Producer,
    serde: AvroSerde,
    tmp_path: Path,
    flows: list[FlowProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = topics_of_our_own(stack, "prom")
    flow = FlowProcess(stack, tmp_path, "inventory_snapshot", "quix", prefix, db=5, stores='["redis"]')
    flows.append(flow)
    flow.cache.flushdb()
    stock_log(producer, serde, prefix, products=200, versions=3)
    flow.start()
    assert answer(replay(flow, "run", "inventory_snapshot"))["status"] == "built"
    assert answer(replay(flow, "verify", "inventory_snapshot"))["parity"] is True

    # the promoting process dies right after the Redis script swapped the generation in, before
    # it cleared the shadow's namespace and recorded the promotion
    class Killed(BaseException):
        pass

    def die(*args: Any) -> None:
        raise Killed

    for name, value in flow.env.items():
        if name.startswith("SHOPSTREAM_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(targets, "drop_namespace", die)
    with pytest.raises(Killed):
        Replays("inventory_snapshot").promote()
    monkeypatch.undo()
    assert flow.cache.hget(targets.GENERATIONS, flow.group) == "1"  # the swap itself happened
    record = json.loads((tmp_path / f"state-{flow.group}" / "replay" / flow.group / "r1" / "replay.json").read_text())
    assert record["status"] == "promoting"

    now = int(time.time() * 1000)
    for p in range(200):  # the live one goes on meanwhile
        produce(producer, serde, ADJUSTED, stock_adjusted(f"P-{p}", 1, "RESTOCK", 4, 0, 4), now, prefix)
    assert producer.flush(30) == 0
    done = answer(replay(flow, "promote", "inventory_snapshot"))
    assert done["status"] == "promoted" and done["generation"] == 1
    assert not list(flow.cache.scan_iter(f"replay:{flow.group}:r1:*"))  # the namespace is gone
    status = answer(replay(flow, "status", "inventory_snapshot"))
    assert status["live"] == {"redis": 1}
    assert [(r["generation"], r["status"]) for r in status["replays"]] == [(1, "promoted")]
    # the live dataflow went on from the promoted positions: every product at its newest version
    eventually(
        lambda: {flow.cache.hget(f"inventory:P-{p}", "version") for p in range(200)} == {"4"},
        timeout=60,
        what="the live values after the promotion",
    )


def generation_values(cache: redis.Redis, group: str, generation: int) -> dict[str, Any]:
    prefix = f"replay:{group}:r{generation}:"
    out: dict[str, Any] = {}
    for key in cache.scan_iter(prefix + "*", count=5_000):
        kind = cache.type(key)
        name = key[len(prefix) :]
        out[name] = cache.hgetall(key) if kind == "hash" else cache.zrange(key, 0, -1, withscores=True)
    return out


def test_plan_says_what_it_would_read_and_into_which_shadow(stack: Stack, tmp_path: Path) -> None:
    prefix = topics_of_our_own(stack, "plan")
    flow = FlowProcess(stack, tmp_path, "inventory_snapshot", "bytewax", prefix, db=6, stores='["redis"]')
    planned = answer(replay(flow, "plan", "inventory_snapshot"))
    assert planned["records"] == 0 and planned["generation"] == 1
    assert [p["partition"] for p in planned["partitions"]] == [f"{prefix}{ADJUSTED.topic}[{i}]" for i in range(3)]
    assert planned["targets"]["redis"]["namespace"] == f"replay:{flow.group}:r1:"
    assert planned["withheld"] == ["Emit"]
    refused = subprocess.run(
        [SHOPSTREAM, "replay", "verify", "inventory_snapshot"], env=flow.env, capture_output=True, text=True
    )
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr and "no replay that is built" in refused.stderr


def test_a_pause_lasts_while_its_lease_is_renewed_and_ends_soon_after_its_holder_is_gone(stack: Stack) -> None:
    """A replay killed mid-verify must not leave the live dataflow paused: the request is a short
    TTL its holder renews (here 3 s, renewed every second)."""
    url = f"redis://{stack.settings.redis.host}:{stack.settings.redis.port}/6"
    client = redis.Redis.from_url(url, decode_responses=True)
    group = f"t-lease-{os.getpid()}-{time.time_ns()}"
    key = pause.PAUSE.format(group=group)
    try:
        request = pause.request_pause(client, group, ttl_s=3)
        lease = pause.PauseLease(url, group, request, ttl_s=3)
        time.sleep(5)  # longer than the TTL: the lease kept it
        assert client.get(key) == request
        lease.close()  # its holder gone (a kill -9 ends the renewing thread the same way)
        eventually(lambda: client.get(key) is None, timeout=5, what="the pause expired")
        # a lease never renews another pauser's request, nor brings a released one back
        other = pause.request_pause(client, group, ttl_s=3)
        stale = pause.PauseLease(url, group, request, ttl_s=3)
        time.sleep(1.5)
        stale.close()
        assert client.get(key) == other and client.ttl(key) <= 2
    finally:
        client.delete(key)
        client.close()
