"""The registry of local-stack components, in start order. To add one: a module here with a
`component(settings, paths) -> Component` function, and one line below."""

from __future__ import annotations

from collections.abc import Callable

from dev.stack.component import Component
from dev.stack.components import (
    cassandra,
    connect,
    iot_ingest,
    kafka,
    mosquitto,
    olap,
    opa,
    opensearch,
    postgres,
    rabbitmq,
    redis,
    registry,
    streams,
    webhooks,
    writers,
)
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings

REGISTRY: list[Callable[[StackSettings, StackPaths], Component]] = [
    postgres.component,
    redis.component,
    # the serving stores (issue 15): they need nothing else of the stack
    cassandra.component,
    opensearch.component,
    kafka.component,
    connect.component,
    registry.component,
    opa.component,
    writers.payment_gateway,
    writers.legacy_payment_gateway,
    writers.inventory_grpc,
    writers.rest_api,
    # -- integrations (issue 8): each adds its own lines below this one --
    rabbitmq.component,
    webhooks.fanout,
    webhooks.dispatcher,
    mosquitto.component,
    iot_ingest.component,
    *streams.factories(),
    olap.component,
    writers.simulator,
    writers.devices,
]


def build_components(settings: StackSettings) -> list[Component]:
    paths = StackPaths(settings.home)
    return [factory(settings, paths) for factory in REGISTRY]


__all__ = ["REGISTRY", "build_components"]
