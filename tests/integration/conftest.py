"""Fixtures the dataflow tests share: the serde, a producer, and the dataflow processes a test
starts (stopped after it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from dev.stack.stack import Stack
from shopstream.serde import AvroSerde, RegistryClient
from tests.integration.flows import FlowProcess


@pytest.fixture(scope="module")
def serde(stack: Stack) -> Iterator[AvroSerde]:
    registry = RegistryClient(stack.settings.registry.url)
    yield AvroSerde(registry)
    registry.close()


@pytest.fixture(scope="module")
def producer(stack: Stack) -> Iterator[Producer]:
    p = Producer({"bootstrap.servers": stack.settings.kafka.bootstrap, "linger.ms": 5, "enable.idempotence": True})
    yield p
    assert p.flush(30) == 0


@pytest.fixture
def flows() -> Iterator[list[FlowProcess]]:
    made: list[FlowProcess] = []
    yield made
    for flow in made:
        flow.stop()
