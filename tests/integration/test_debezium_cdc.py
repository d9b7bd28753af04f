"""Debezium on the real stack: a row written to Postgres arrives on Kafka as a change event."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from confluent_kafka import Consumer

from connectors import ApplyResult, ConnectClient, ConnectError, ConnectorConfig, ConnectorFailed, load_config
from dev.stack import StackSettings
from dev.stack.stack import Stack

CONFIG = Path(__file__).parent / "connectors" / "cdc-smoke.json"


def sql(settings: StackSettings, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(settings.postgres.dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def connect(stack: Stack) -> Iterator[ConnectClient]:
    with ConnectClient(stack.settings.connect.url) as client:
        yield client


@pytest.fixture
def smoke(stack: Stack, connect: ConnectClient) -> Iterator[ConnectorConfig]:
    """A captured table, its connector config, and clean-up of slot and publication afterwards."""
    run = uuid.uuid4().hex[:8]
    settings = stack.settings
    sql(settings, f"CREATE TABLE cdc_smoke_{run} (id serial PRIMARY KEY, sku text NOT NULL, qty int NOT NULL)")
    config = load_config(CONFIG, settings.connector_values(), run=run)
    yield config
    connect.delete(config.name)
    deadline = time.monotonic() + 30
    while True:  # the slot stays active until the task has really stopped
        try:
            sql(
                settings,
                f"SELECT pg_drop_replication_slot('cdc_smoke_{run}') "
                f"FROM pg_replication_slots WHERE slot_name = 'cdc_smoke_{run}'",
            )
            break
        except asyncpg.ObjectInUseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    sql(settings, f"DROP PUBLICATION IF EXISTS cdc_smoke_{run}", f"DROP TABLE cdc_smoke_{run}")


def consume_until(consumer: Consumer, want: Any, timeout: float) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error() is not None:
            continue  # UNKNOWN_TOPIC_OR_PART until Debezium's first event creates the topic
        seen.append(json.loads(msg.value()))
        if want(seen):
            return seen
    raise AssertionError(f"no matching change event within {timeout}s; saw {seen}")


def subscribe(stack: Stack, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.settings.kafka.bootstrap,
            "group.id": f"t-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    return consumer


def test_insert_arrives_as_change_event_within_10s_and_reapply_is_clean(
    stack: Stack, connect: ConnectClient, smoke: ConnectorConfig
) -> None:
    table = smoke.config["table.include.list"].split(".")[1]
    topic = f"{smoke.config['topic.prefix']}.public.{table}"
    assert connect.apply(smoke) is ApplyResult.CREATED
    connect.wait_running(smoke.name, timeout=60)
    consumer = subscribe(stack, topic)
    try:
        inserted = time.monotonic()
        sql(stack.settings, f"INSERT INTO {table} (sku, qty) VALUES ('SKU-1', 3)")
        events = consume_until(consumer, lambda s: any(e["after"]["sku"] == "SKU-1" for e in s), timeout=10)
        assert time.monotonic() - inserted <= 10
        event = next(e for e in events if e["after"]["sku"] == "SKU-1")
        assert event["op"] in ("c", "r") and event["after"]["qty"] == 3
        assert event["source"]["connector"] == "postgresql"

        # delete the connector; a row written meanwhile is kept by the replication slot
        assert connect.delete(smoke.name)
        assert connect.status(smoke.name) is None
        sql(stack.settings, f"INSERT INTO {table} (sku, qty) VALUES ('SKU-2', 5)")
        assert connect.apply(smoke) is ApplyResult.CREATED
        connect.wait_running(smoke.name, timeout=60)
        sql(stack.settings, f"UPDATE {table} SET qty = 7 WHERE sku = 'SKU-1'")
        events = consume_until(
            consumer, lambda s: any(e["op"] == "u" and e["after"]["qty"] == 7 for e in s), timeout=20
        )
        skus = [e["after"]["sku"] for e in events]
        assert "SKU-2" in skus, skus
        assert skus.count("SKU-2") == 1, skus  # resumed from the stored offset: no duplicate
    finally:
        consumer.close()


def test_applying_the_same_config_twice_is_a_no_op(connect: ConnectClient, smoke: ConnectorConfig) -> None:
    assert connect.apply(smoke) is ApplyResult.CREATED
    connect.wait_running(smoke.name, timeout=60)
    assert connect.apply(smoke) is ApplyResult.UNCHANGED
    changed = ConnectorConfig(smoke.name, {**smoke.config, "heartbeat.interval.ms": "5000"})
    assert connect.apply(changed) is ApplyResult.UPDATED
    assert connect.config(smoke.name)["heartbeat.interval.ms"] == "5000"  # type: ignore[index]
    connect.wait_running(smoke.name, timeout=60)


def test_a_bad_config_is_reported_with_the_reason(connect: ConnectClient, smoke: ConnectorConfig) -> None:
    wrong = ConnectorConfig(smoke.name, {**smoke.config, "database.password": "not-the-password"})
    with pytest.raises(ConnectError, match="password authentication failed"):
        connect.apply(wrong)
        connect.wait_running(wrong.name, timeout=60)


def test_a_failed_task_is_reported_with_its_trace(stack: Stack, connect: ConnectClient, smoke: ConnectorConfig) -> None:
    table = smoke.config["table.include.list"].split(".")[1]
    sql(stack.settings, f"INSERT INTO {table} (sku, qty) VALUES ('SKU-9', 1)")
    # a converter that cannot write Debezium's structured values: the task dies on the first record
    broken = ConnectorConfig(
        smoke.name, {**smoke.config, "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter"}
    )
    with pytest.raises(ConnectorFailed) as failed:
        connect.apply(broken)
        connect.wait_running(broken.name, timeout=60, settle=20)
    assert "ByteArrayConverter" in failed.value.trace
    assert "task 0 FAILED" in str(failed.value)
