"""The process manager and `status` against the real components."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dev.stack import StackError, StackSettings
from dev.stack.stack import ComponentStatus, Stack


def by_name(statuses: list[ComponentStatus]) -> dict[str, ComponentStatus]:
    return {s.name: s for s in statuses}


def wait_for(stack: Stack, name: str, state: str, timeout: float = 60) -> ComponentStatus:
    deadline = time.monotonic() + timeout
    while True:
        current = by_name(stack.status([name]))[name]
        if current.state == state or time.monotonic() > deadline:
            return current
        time.sleep(0.2)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dev.stack.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
        check=False,
    )


def test_status_reports_every_component_up_with_version_port_pid_and_log(stack: Stack) -> None:
    statuses = by_name(stack.status())
    assert set(statuses) == {
        "postgres",
        "redis",
        "cassandra",
        "opensearch",
        "kafka",
        "connect",
        "schema-registry",
        "opa",
        "payment-gateway",
        "legacy-payment-gateway",
        "inventory-grpc",
        "api",
        "stream-inventory-snapshot",
        "stream-revenue-windows",
        "stream-flash-sale-price-map",
        "stream-serving-caches",
        "stream-orders-by-customer",
        "stream-product-search-index",
        "olap",
        "rabbitmq",
        "webhook-fanout",
        "webhook-dispatcher",
        "mosquitto",
        "iot-ingest",
    }
    for s in statuses.values():
        assert s.state == "up", s
        assert s.pid and Path(f"/proc/{s.pid}").exists()
        assert s.log.exists()
    assert statuses["postgres"].version.startswith("15.")
    assert statuses["kafka"].version.startswith("4.")
    assert "+dbz-3.6" in statuses["connect"].version
    assert statuses["kafka"].ports == (stack.settings.kafka.port, stack.settings.kafka.controller_port)


def test_a_component_stopped_on_purpose_shows_down_and_comes_back(stack: Stack) -> None:
    stack.down(["redis"])
    try:
        statuses = by_name(stack.status())
        assert statuses["redis"].state == "down"
        assert statuses["redis"].detail == "STOPPED"
        assert statuses["redis"].pid is None
        assert all(s.state == "up" for n, s in statuses.items() if n != "redis")  # down stops only redis
        result = cli("status")
        assert result.returncode == 1
        assert "redis" in result.stdout and "down" in result.stdout
    finally:
        stack.up(["redis"])
    assert by_name(stack.status())["redis"].state == "up"


def test_a_crashed_component_is_restarted_by_the_process_manager(stack: Stack) -> None:
    before = by_name(stack.status())["redis"]
    assert before.pid is not None
    os.kill(before.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        after = by_name(stack.status())["redis"]
        if after.state == "up" and after.pid != before.pid:
            break
        assert time.monotonic() < deadline, f"redis not restarted: {after}"
        time.sleep(0.2)


def test_up_twice_is_harmless(stack: Stack) -> None:
    pids = {s.name: s.pid for s in stack.status()}
    statuses = stack.up()
    assert all(s.healthy for s in statuses)
    assert {s.name: s.pid for s in statuses} == pids  # nothing was restarted


def test_a_busy_port_is_one_clear_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {"SHOPSTREAM_HOME": str(tmp_path), "SHOPSTREAM_REDIS__PORT": str(port)}
        with pytest.raises(StackError, match=f"port {port} \\(redis\\).*SHOPSTREAM_REDIS__PORT"):
            Stack(StackSettings(home=tmp_path, redis={"port": port})).up(["redis"])
        result = cli("up", "redis", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1 and "SHOPSTREAM_REDIS__PORT" in lines[0], result.stdout


def test_missing_java_is_one_clear_line_and_status_still_works(stack: Stack, tmp_path: Path) -> None:
    no_java = {"SHOPSTREAM_JAVA_HOME": str(tmp_path / "no-jdk")}
    result = cli("up", "kafka", env=no_java)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1 and "SHOPSTREAM_JAVA_HOME" in lines[0], result.stdout
    assert cli("status", env=no_java).returncode == 0  # inspecting (or stopping) needs no Java


def test_unknown_component_is_named(stack: Stack) -> None:
    result = cli("logs", "kafak")
    assert result.returncode == 1
    assert "unknown component kafak" in result.stdout and "kafka" in result.stdout
