"""The partner-webhook-dispatcher as stack components: the fan-out (Kafka → RabbitMQ deliveries,
healthy once its consumer group is stable) and the dispatcher (RabbitMQ → partners' endpoints,
healthy while it consumes its work queue, as its /metrics says)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from dev.stack.component import Component, Port, ProbeFailed
from dev.stack.components.streams import group_probe
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from shopstream import __version__
from webhooks.settings import WebhookDispatcherSettings, WebhookFanoutSettings

PYTHON = str(Path(sys.prefix) / "bin" / "python")
FANOUT = "SHOPSTREAM_WEBHOOK_FANOUT__"
DISPATCHER = "SHOPSTREAM_WEBHOOK_DISPATCHER__"


def webhook_environment(prefix: str, settings: StackSettings) -> dict[str, str]:
    """What both processes are given, each under its own prefix: the stack's endpoints, and the
    schedule they both run (the dispatcher's, so that both declare the same queues)."""
    schedule = WebhookDispatcherSettings().retry_schedule
    return {
        prefix + "POSTGRES__DSN": settings.postgres.dsn,
        prefix + "REGISTRY__URL": settings.registry.url,
        prefix + "RABBITMQ__URL": settings.rabbitmq.url,
        prefix + "RETRY_SCHEDULE": json.dumps(list(schedule)),
    }


def _dependencies(settings: StackSettings) -> list[tuple[str, int]]:
    return [
        (settings.postgres.host, settings.postgres.port),
        (settings.kafka.host, settings.kafka.port),
        (settings.registry.host, settings.registry.port),
        (settings.rabbitmq.host, settings.rabbitmq.port),
    ]


def fanout(settings: StackSettings, paths: StackPaths) -> Component:
    group = WebhookFanoutSettings().consumer_group
    return Component(
        name="webhook-fanout",
        summary="Partner webhooks: order and flash-sale events (Kafka) → deliveries (RabbitMQ)",
        ports=[],
        command=[PYTHON, "-m", "webhooks.fanout"],
        probe=lambda: group_probe(settings.kafka.bootstrap, group),
        environment={**webhook_environment(FANOUT, settings), FANOUT + "KAFKA__BOOTSTRAP": settings.kafka.bootstrap},
        wait_for=_dependencies(settings),
    )


def dispatcher(settings: StackSettings, paths: StackPaths) -> Component:
    port = WebhookDispatcherSettings().metrics.port
    url = f"http://127.0.0.1:{port}/metrics"

    def probe() -> str:
        try:
            answer = httpx.get(url, timeout=2)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise ProbeFailed(str(exc)) from exc
        if "webhook_dispatcher_consuming 1.0" not in answer.text:
            raise ProbeFailed("not consuming its work queue yet")
        return __version__

    return Component(
        name="webhook-dispatcher",
        summary="Partner webhooks: signed POSTs, retries via RabbitMQ delay queues, DLQ",
        ports=[Port(port, DISPATCHER + "METRICS__PORT")],
        command=[PYTHON, "-m", "webhooks.dispatcher"],
        probe=probe,
        environment={**webhook_environment(DISPATCHER, settings), DISPATCHER + "METRICS__PORT": str(port)},
        wait_for=_dependencies(settings),
    )
