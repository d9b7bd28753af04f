"""Our schema registry (Confluent REST API), its state in the compacted topic `_schemas`."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from dev.stack.component import Component, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from shopstream import __version__


def component(settings: StackSettings, paths: StackPaths) -> Component:
    cfg = settings.registry

    def probe() -> str:
        try:
            httpx.get(f"{cfg.url}/subjects", timeout=2).raise_for_status()
            version = httpx.get(f"{cfg.url}/v1/metadata/version", timeout=2).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProbeFailed(f"REST API: {exc}") from exc
        return str(version.get("version", __version__))

    return Component(
        name="schema-registry",
        summary="Schema registry (Confluent REST API, Avro)",
        ports=[Port(cfg.port, settings.env_name("registry", "port"))],
        command=[str(Path(sys.prefix) / "bin" / "python"), "-m", "registry"],
        probe=probe,
        environment={
            "SHOPSTREAM_REGISTRY__LISTEN__HOST": cfg.host,
            "SHOPSTREAM_REGISTRY__LISTEN__PORT": str(cfg.port),
            "SHOPSTREAM_REGISTRY__KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
            "SHOPSTREAM_REGISTRY__TOPIC": cfg.topic,
        },
        wait_for=[(settings.kafka.host, settings.kafka.port)],
    )
