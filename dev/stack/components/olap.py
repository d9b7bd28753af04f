"""The OLAP service as a stack component: the one process that owns the embedded ClickHouse store,
lands the topics into it and builds the dbt marts (olap.service)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from dev.stack.component import Component, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings

PYTHON = str(Path(sys.prefix) / "bin" / "python")


def olap_environment(settings: StackSettings, paths: StackPaths) -> dict[str, str]:
    """The service's settings (`olap.settings.OlapSettings`) as the stack runs it."""
    return {
        "SHOPSTREAM_OLAP__PATH": str(paths.data("olap")),
        "SHOPSTREAM_OLAP__DBT_WORK_DIR": str(paths.data("olap-dbt")),
        "SHOPSTREAM_OLAP__LISTEN__HOST": settings.olap.host,
        "SHOPSTREAM_OLAP__LISTEN__PORT": str(settings.olap.port),
        "SHOPSTREAM_OLAP__KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "SHOPSTREAM_OLAP__REGISTRY__URL": settings.registry.url,
        "SHOPSTREAM_OLAP__BUILD_INTERVAL_S": str(settings.olap.build_interval_s),
    }


def component(settings: StackSettings, paths: StackPaths) -> Component:
    olap = settings.olap

    def probe() -> str:
        try:
            answer = httpx.get(f"{olap.url}/health", timeout=2)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise ProbeFailed(str(exc)) from exc
        return str(answer.json()["version"])

    return Component(
        name="olap",
        summary="OLAP service: lands CDC + events into embedded ClickHouse (chdb), builds the dbt marts",
        ports=[Port(olap.port, settings.env_name("olap", "port"))],
        command=[PYTHON, "-m", "olap"],
        probe=probe,
        environment=olap_environment(settings, paths),
        wait_for=[(settings.kafka.host, settings.kafka.port), (settings.registry.host, settings.registry.port)],
        stop_wait_seconds=60,
    )
