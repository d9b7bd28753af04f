"""The dataflows as stack components: one process per dataflow (`python -m streams NAME`),
healthy once its consumer group is stable with members (Quix), or once it has been up a few
seconds with its recovery snapshots being written (Bytewax, which assigns partitions itself)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from dev.stack.component import Component, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from shopstream import __version__
from streams import DATAFLOW_NAMES

PYTHON = str(Path(sys.prefix) / "bin" / "python")


def dataflow_environment(name: str, settings: StackSettings, paths: StackPaths) -> dict[str, str]:
    """A dataflow's settings (`streams.settings`) as the stack runs it."""
    prefix = f"SHOPSTREAM_{name.upper()}__"
    env = {
        prefix + "KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        prefix + "REGISTRY__URL": settings.registry.url,
        prefix + "REDIS__URL": settings.redis.url,
        prefix + "CASSANDRA__CONTACT_POINTS": settings.cassandra.address,
        prefix + "OPENSEARCH__URL": settings.opensearch.url,
        prefix + "STATE_DIR": str(paths.data("streams")),
    }
    engine = settings.streams.engines.get(name)
    if engine is not None:
        env[prefix + "ENGINE"] = engine
    return env


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


def engine_of(name: str, settings: StackSettings) -> str:
    """The engine the stack runs a dataflow on: the stack's setting, else the dataflow's default."""
    from streams.catalog import dataflow

    default: str = dataflow(name).settings.model_fields["engine"].default
    return settings.streams.engines.get(name, default)


def heartbeat_probe(path: Path, max_age_s: float = 15.0) -> str:
    """Healthy while the engine's source touches its heartbeat file (Bytewax: no group to ask)."""
    import time

    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        raise ProbeFailed(f"no heartbeat yet ({path})") from None
    if age > max_age_s:
        raise ProbeFailed(f"last heartbeat {age:.0f}s ago ({path})")
    return __version__


def dataflow(name: str, settings: StackSettings, paths: StackPaths) -> Component:
    engine = engine_of(name, settings)
    probe: Callable[[], str]
    if engine == "quix":
        summary = f"Dataflow {name} (Quix Streams, exactly-once)"
        probe = partial(group_probe, settings.kafka.bootstrap, consumer_group(name))
    else:
        summary = f"Dataflow {name} (Bytewax, snapshots + idempotent sinks)"
        probe = partial(heartbeat_probe, paths.data("streams") / "heartbeat" / consumer_group(name))
    return Component(
        name="stream-" + name.replace("_", "-"),
        summary=summary,
        ports=[],
        command=[PYTHON, "-m", "streams", name, "--engine", engine],
        probe=probe,
        environment=dataflow_environment(name, settings, paths),
        wait_for=[
            (settings.kafka.host, settings.kafka.port),
            (settings.registry.host, settings.registry.port),
            (settings.redis.host, settings.redis.port),
            *([(settings.cassandra.host, settings.cassandra.port)] if _writes(name, "cassandra") else []),
            *([(settings.opensearch.host, settings.opensearch.port)] if _writes(name, "opensearch") else []),
        ],
    )


def _writes(name: str, store: str) -> bool:
    from streams.catalog import dataflow as spec

    info = spec(name)
    return store in info.projection(info.settings()).stores


def factories() -> list[Callable[[StackSettings, StackPaths], Component]]:
    return [partial(dataflow, name) for name in DATAFLOW_NAMES]
