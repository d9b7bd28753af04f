"""The IoT stock ingest as a stack component (`python -m ingest`): MQTT deltas from the
Mosquitto broker → stock adjustments through the REST API; healthy once its MQTT session is up."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from dev.stack.component import Component, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from shopstream import __version__

PYTHON = str(Path(sys.prefix) / "bin" / "python")


def health_port() -> int:
    """The ingest's /health and /metrics port (SHOPSTREAM_IOT_INGEST__LISTEN__PORT, default 8097)."""
    from ingest.settings import IotIngestSettings

    return IotIngestSettings().listen.port


def token_file(paths: StackPaths) -> Path:
    """The ingest's credential (role STOCK_KEEPER), issued by the stack's identity provider."""
    return paths.home / "secrets" / "iot-ingest.jwt"


def ingest_environment(settings: StackSettings, paths: StackPaths) -> dict[str, str]:
    """The ingest's settings (`ingest.settings.IotIngestSettings`) as the stack runs it."""
    return {
        "SHOPSTREAM_IOT_INGEST__API_TOKEN_FILE": str(token_file(paths)),
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

    def prepare() -> None:
        from dev.stack.identity import INGEST_ROLES, INGEST_SUBJECT, LocalIdentity

        # not a config file: a renewed token is re-read by the running ingest, no restart
        LocalIdentity().ensure_token_file(token_file(paths), INGEST_SUBJECT, INGEST_ROLES)

    return Component(
        name="iot-ingest",
        summary="IoT stock ingest: MQTT iot/inventory/{sku}/delta → stock adjustments (REST) / DLQ",
        ports=[Port(port, "SHOPSTREAM_IOT_INGEST__LISTEN__PORT")],
        command=[PYTHON, "-m", "ingest"],
        probe=probe,
        prepare=prepare,
        environment=ingest_environment(settings, paths),
        wait_for=[
            (settings.mosquitto.host, settings.mosquitto.port),
            (settings.api.host, settings.api.port),
            (settings.kafka.host, settings.kafka.port),
        ],
    )
