"""The dataflows as stack components: one process per dataflow (`shopstream streams run NAME`),
healthy once its consumer group is stable with members."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from shopstream import __version__
from shopstream.stack.component import Component, ProbeFailed
from shopstream.stack.paths import StackPaths
from shopstream.stack.settings import StackSettings
from streams import DATAFLOW_NAMES

SHOPSTREAM = str(Path(sys.prefix) / "bin" / "shopstream")


def dataflow_environment(name: str, settings: StackSettings, paths: StackPaths) -> dict[str, str]:
    """A dataflow's settings (`streams.settings`) as the stack runs it."""
    prefix = f"SHOPSTREAM_{name.upper()}__"
    return {
        prefix + "KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        prefix + "REGISTRY_URL": settings.registry.url,
        prefix + "REDIS_URL": settings.redis.url,
        prefix + "STATE_DIR": str(paths.data("streams")),
    }


def consumer_group(name: str) -> str:
    return f"shopstream-{name}"


def group_probe(bootstrap: str, group: str) -> str:
    from confluent_kafka import ConsumerGroupState, KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        described = admin.describe_consumer_groups([group], request_timeout=3)[group].result()
    except KafkaException as exc:
        raise ProbeFailed(f"consumer group {group}: {exc}") from exc
    if described.state != ConsumerGroupState.STABLE or not described.members:
        raise ProbeFailed(f"consumer group {group} is {described.state.name.lower()}")
    return __version__


def dataflow(name: str, settings: StackSettings, paths: StackPaths) -> Component:
    return Component(
        name="stream-" + name.replace("_", "-"),
        summary=f"Dataflow {name} (Quix Streams, exactly-once)",
        ports=[],
        command=[SHOPSTREAM, "streams", "run", name],
        probe=lambda: group_probe(settings.kafka.bootstrap, consumer_group(name)),
        environment=dataflow_environment(name, settings, paths),
        wait_for=[
            (settings.kafka.host, settings.kafka.port),
            (settings.registry.host, settings.registry.port),
            (settings.redis.host, settings.redis.port),
        ],
    )


def factories() -> list[Callable[[StackSettings, StackPaths], Component]]:
    return [partial(dataflow, name) for name in DATAFLOW_NAMES]
