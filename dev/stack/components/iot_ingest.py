"""The IoT stock ingest as a stack component (`shopstream ingest run`): MQTT deltas from the
Mosquitto broker → stock adjustments through the REST API; healthy once its MQTT session is up."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from dev.stack.component import Component, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from shopstream import __version__

SHOPSTREAM = str(Path(sys.prefix) / "bin" / "shopstream")


def health_port() -> int:
    """The ingest's /health and /metrics port (SHOPSTREAM_IOT_INGEST__LISTEN__PORT, default 8097)."""
    from ingest.settings import IotIngestSettings

    return IotIngestSettings().listen.port


def ingest_environment(settings: StackSettings, paths: StackPaths) -> dict[str, str]:
    """The ingest's settings (`ingest.settings.IotIngestSettings`) as the stack runs it."""
    return {
        "SHOPSTREAM_IOT_INGEST__MQTT__HOST": settings.mosquitto.host,
        "SHOPSTREAM_IOT_INGEST__MQTT__PORT": str(settings.mosquitto.port),
        "SHOPSTREAM_IOT_INGEST__API__URL": settings.api.url,
        "SHOPSTREAM_IOT_INGEST__KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "SHOPSTREAM_IOT_INGEST__LISTEN__HOST": "127.0.0.1",
        "SHOPSTREAM_IOT_INGEST__LISTEN__PORT": str(health_port()),
    }


def component(settings: StackSettings, paths: StackPaths) -> Component:
    port = health_port()
    url = f"http://127.0.0.1:{port}/health"

    def probe() -> str:
        try:
            answer = httpx.get(url, timeout=2)
        except httpx.HTTPError as exc:
            raise ProbeFailed(str(exc)) from exc
        if answer.status_code != 200:
            raise ProbeFailed(f"MQTT session down ({url}: HTTP {answer.status_code})")
        return __version__

    return Component(
        name="iot-ingest",
        summary="IoT stock ingest: MQTT iot/inventory/{sku}/delta → stock adjustments (REST) / DLQ",
        ports=[Port(port, "SHOPSTREAM_IOT_INGEST__LISTEN__PORT")],
        command=[SHOPSTREAM, "ingest", "run"],
        probe=probe,
        environment=ingest_environment(settings, paths),
        wait_for=[
            (settings.mosquitto.host, settings.mosquitto.port),
            (settings.api.host, settings.api.port),
            (settings.kafka.host, settings.kafka.port),
        ],
    )
