"""The writers as stack components: the simulated payment gateways (REST, legacy SOAP), the gRPC
inventory service and the storefront REST API, each a Python process of this environment."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dev.stack.component import Component, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from shopstream import __version__

PYTHON = str(Path(sys.prefix) / "bin" / "python")


def api_environment(settings: StackSettings, paths: StackPaths) -> dict[str, str]:
    """The API's settings (`serving_api.settings.ApiSettings`) as the stack runs it."""
    api = settings.api
    return {
        "SHOPSTREAM_API__LISTEN__HOST": api.host,
        "SHOPSTREAM_API__LISTEN__PORT": str(api.port),
        "SHOPSTREAM_API__INVENTORY__HOST": api.host,
        "SHOPSTREAM_API__INVENTORY__PORT": str(api.grpc_port),
        "SHOPSTREAM_API__PAYMENT_GATEWAY__HOST": api.host,
        "SHOPSTREAM_API__PAYMENT_GATEWAY__PORT": str(api.payment_port),
        "SHOPSTREAM_API__LEGACY_PAYMENT_GATEWAY__HOST": api.host,
        "SHOPSTREAM_API__LEGACY_PAYMENT_GATEWAY__PORT": str(api.soap_payment_port),
        "SHOPSTREAM_API__POSTGRES__DSN": settings.postgres.dsn,
        "SHOPSTREAM_API__REGISTRY__URL": settings.registry.url,
        "SHOPSTREAM_API__OPA__URL": settings.opa.url,
        "SHOPSTREAM_API__REDIS__URL": settings.redis.url,
        "SHOPSTREAM_API__KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "SHOPSTREAM_API__CASSANDRA__CONTACT_POINTS": settings.cassandra.address,
        "SHOPSTREAM_API__OPENSEARCH__URL": settings.opensearch.url,
        "SHOPSTREAM_API__TRACES_FILE": str(paths.logs / "traces.jsonl"),
        # the local stack's webhook partners are receivers on this machine
        "SHOPSTREAM_API__WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    }


def inventory_environment(settings: StackSettings, paths: StackPaths) -> dict[str, str]:
    """The gRPC inventory service's settings (`serving_api.settings.InventoryGrpcSettings`)."""
    return {
        "SHOPSTREAM_INVENTORY_GRPC__LISTEN__HOST": settings.api.host,
        "SHOPSTREAM_INVENTORY_GRPC__LISTEN__PORT": str(settings.api.grpc_port),
        "SHOPSTREAM_INVENTORY_GRPC__POSTGRES__DSN": settings.postgres.dsn,
        "SHOPSTREAM_INVENTORY_GRPC__REGISTRY__URL": settings.registry.url,
        "SHOPSTREAM_INVENTORY_GRPC__TRACES_FILE": str(paths.logs / "traces.jsonl"),
    }


def _http_probe(url: str) -> str:
    try:
        httpx.get(url, timeout=2).raise_for_status()
    except httpx.HTTPError as exc:
        raise ProbeFailed(str(exc)) from exc
    return __version__


def payment_gateway(settings: StackSettings, paths: StackPaths) -> Component:
    api = settings.api
    return Component(
        name="payment-gateway",
        summary="Simulated REST payment gateway (deterministic approve/decline)",
        ports=[Port(api.payment_port, settings.env_name("api", "payment_port"))],
        command=[PYTHON, "-m", "dev.simulators.payment_gateway"],
        probe=lambda: _http_probe(f"http://{api.host}:{api.payment_port}/health"),
        environment={
            "SHOPSTREAM_PAYMENT_GATEWAY__LISTEN__HOST": api.host,
            "SHOPSTREAM_PAYMENT_GATEWAY__LISTEN__PORT": str(api.payment_port),
        },
    )


def legacy_payment_gateway(settings: StackSettings, paths: StackPaths) -> Component:
    api = settings.api
    return Component(
        name="legacy-payment-gateway",
        summary="Simulated legacy SOAP 1.1 payment gateway (WSDL at /soap?wsdl; the adapter's primary path)",
        ports=[Port(api.soap_payment_port, settings.env_name("api", "soap_payment_port"))],
        command=[PYTHON, "-m", "dev.simulators.legacy_gateway"],
        probe=lambda: _http_probe(f"http://{api.host}:{api.soap_payment_port}/health"),
        environment={
            "SHOPSTREAM_LEGACY_PAYMENT_GATEWAY__LISTEN__HOST": api.host,
            "SHOPSTREAM_LEGACY_PAYMENT_GATEWAY__LISTEN__PORT": str(api.soap_payment_port),
        },
    )


def inventory_grpc(settings: StackSettings, paths: StackPaths) -> Component:
    api = settings.api
    target = f"{api.host}:{api.grpc_port}"

    def probe() -> str:
        with grpc.insecure_channel(target) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="shopstream.inventory.v1.Inventory"), timeout=2
                )
            except grpc.RpcError as exc:
                raise ProbeFailed(f"gRPC health: {exc.code().name}") from exc
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise ProbeFailed(f"gRPC health: {answer.status}")
        return __version__

    return Component(
        name="inventory-grpc",
        summary="gRPC inventory service (ReserveStock, ReleaseStock, QueryStock)",
        ports=[Port(api.grpc_port, settings.env_name("api", "grpc_port"))],
        command=[PYTHON, "-m", "serving_api.grpc"],
        probe=probe,
        environment=inventory_environment(settings, paths),
        wait_for=[(settings.postgres.host, settings.postgres.port), (settings.registry.host, settings.registry.port)],
    )


def rest_api(settings: StackSettings, paths: StackPaths) -> Component:
    api = settings.api
    return Component(
        name="api",
        summary="Storefront REST API (FastAPI): products, carts, orders",
        ports=[Port(api.port, settings.env_name("api", "port"))],
        command=[PYTHON, "-m", "serving_api"],
        probe=lambda: _http_probe(f"{api.url}/health"),
        environment=api_environment(settings, paths),
        wait_for=[
            (settings.postgres.host, settings.postgres.port),
            (settings.registry.host, settings.registry.port),
            (settings.opa.host, settings.opa.port),
            (settings.redis.host, settings.redis.port),
            (api.host, api.grpc_port),
        ],
    )


def simulator(settings: StackSettings, paths: StackPaths) -> Component:
    """The storefront workload of `make run`, at a modest rate, until stopped."""
    rate = "5"
    return Component(
        name="simulator",
        summary=f"Storefront workload through the public API ({rate} actions/s)",
        ports=[],
        command=[str(Path(sys.prefix) / "bin" / "shopstream"), "simulate", "--rate", rate, "--duration", "0"],
        probe=lambda: _http_probe(f"{settings.api.url}/health"),
        environment={"SHOPSTREAM_STOREFRONT__API__URL": settings.api.url, "COLUMNS": "120"},
        wait_for=[(settings.api.host, settings.api.port)],
        optional=True,
    )


def devices(settings: StackSettings, paths: StackPaths) -> Component:
    """The IoT side of `make run`: simulated shelf sensors and a restock scanner publishing stock
    deltas over MQTT for the catalogue's products, until stopped."""
    rate = "1"
    return Component(
        name="devices",
        summary=f"Simulated IoT shelf sensors over MQTT ({rate} delta/s)",
        ports=[],
        command=[str(Path(sys.prefix) / "bin" / "shopstream"), "ingest", "devices", "--rate", rate, "--duration", "0"],
        probe=lambda: _http_probe(f"{settings.api.url}/health"),
        environment={
            "SHOPSTREAM_DEVICES__API__URL": settings.api.url,
            "SHOPSTREAM_DEVICES__MQTT__HOST": settings.mosquitto.host,
            "SHOPSTREAM_DEVICES__MQTT__PORT": str(settings.mosquitto.port),
            "COLUMNS": "120",
        },
        wait_for=[(settings.api.host, settings.api.port), (settings.mosquitto.host, settings.mosquitto.port)],
        optional=True,
    )
