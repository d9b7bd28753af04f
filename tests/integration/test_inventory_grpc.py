"""The gRPC inventory service: status codes, idempotency per order, health and reflection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dev.stack.stack import Stack
from serving_api.gen.shopstream.inventory.v1 import inventory_pb2 as pb
from serving_api.gen.shopstream.inventory.v1 import inventory_pb2_grpc as pb_grpc
from tests.integration.api_client import Storefront


@pytest.fixture(scope="module")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"{stack.settings.api.host}:{stack.settings.api.grpc_port}") as ch:
        yield ch


def reserve(stub: pb_grpc.InventoryStub, order_id: str, *lines: tuple[str, int]) -> pb.ReserveResponse:
    return stub.ReserveStock(
        pb.ReserveRequest(
            order_id=order_id, correlation_id="grpc-test", lines=[pb.ReserveLine(product_id=p, qty=q) for p, q in lines]
        ),
        timeout=10,
    )


def test_reserve_is_idempotent_per_order_and_release_gives_back(channel: grpc.Channel, shop: Storefront) -> None:
    stub = pb_grpc.InventoryStub(channel)
    p = shop.product(stock=5)["id"]
    order = f"ORD-grpc-{uuid.uuid4().hex[:8]}"
    first = reserve(stub, order, (p, 2))
    assert not first.already_reserved and first.stock[0].available == 3
    again = reserve(stub, order, (p, 2))
    assert again.already_reserved and again.stock[0].available == 3
    with pytest.raises(grpc.RpcError) as err:
        reserve(stub, order, (p, 1))  # the same order, other lines
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    released = stub.ReleaseStock(pb.ReleaseRequest(order_id=order), timeout=10)
    assert released.lines_released == 1
    assert stub.ReleaseStock(pb.ReleaseRequest(order_id=order), timeout=10).lines_released == 0
    assert stub.QueryStock(pb.StockQuery(product_id=p), timeout=10).available == 5


def test_status_codes(channel: grpc.Channel, shop: Storefront) -> None:
    stub = pb_grpc.InventoryStub(channel)
    p = shop.product(stock=1)["id"]
    cases = [
        (lambda: reserve(stub, "ORD-x", (p, 2)), grpc.StatusCode.FAILED_PRECONDITION, "insufficient stock"),
        (lambda: reserve(stub, "ORD-y", ("P-missing", 1)), grpc.StatusCode.NOT_FOUND, "unknown product"),
        (lambda: reserve(stub, "", (p, 1)), grpc.StatusCode.INVALID_ARGUMENT, "order_id"),
        (lambda: reserve(stub, "ORD-z", (p, 0)), grpc.StatusCode.INVALID_ARGUMENT, "qty > 0"),
        (lambda: stub.QueryStock(pb.StockQuery(product_id="P-missing"), timeout=10), grpc.StatusCode.NOT_FOUND, ""),
        (lambda: stub.QueryStock(pb.StockQuery(), timeout=10), grpc.StatusCode.INVALID_ARGUMENT, ""),
    ]
    for call, code, text in cases:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code and text in (err.value.details() or "")
    assert stub.QueryStock(pb.StockQuery(product_id=p), timeout=10).available == 1  # nothing was taken


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service="shopstream.inventory.v1.Inventory"), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert "shopstream.inventory.v1.Inventory" in names and "grpc.health.v1.Health" in names


def test_a_released_order_cannot_reserve_again(channel: grpc.Channel, shop: Storefront) -> None:
    stub = pb_grpc.InventoryStub(channel)
    p = shop.product(stock=3)["id"]
    order = f"ORD-late-{uuid.uuid4().hex[:8]}"
    assert stub.ReleaseStock(pb.ReleaseRequest(order_id=order), timeout=10).lines_released == 0  # compensation first
    with pytest.raises(grpc.RpcError) as err:
        reserve(stub, order, (p, 1))  # the late reservation it compensated for
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "released" in (err.value.details() or "")
    assert stub.QueryStock(pb.StockQuery(product_id=p), timeout=10).available == 3


def test_orphaned_reservations_are_swept(stack: Stack, channel: grpc.Channel, shop: Storefront) -> None:
    import asyncio

    import asyncpg

    from serving_api.services import inventory
    from shopstream.runtime.context import Context
    from shopstream.serde import AvroSerde, RegistryClient

    stub = pb_grpc.InventoryStub(channel)
    p = shop.product(stock=4)["id"]
    orphan = f"ORD-orphan-{uuid.uuid4().hex[:8]}"
    reserve(stub, orphan, (p, 2))  # reserved, but no order ever commits
    placed = shop.order("alice", [(p, 1)]).json()["id"]  # a real order is not an orphan

    async def sweep() -> list[str]:
        conn = await asyncpg.connect(stack.settings.postgres.dsn)
        try:
            with RegistryClient(stack.settings.registry.url) as registry:
                ctx = Context(AvroSerde(registry), "inventory-service", "sweep-test", uuid.uuid4().hex)
                async with conn.transaction():
                    return await inventory.release_orphans(conn, ctx, older_than_seconds=0)
        finally:
            await conn.close()

    swept = asyncio.run(sweep())
    assert orphan in swept and placed not in swept
    stock = stub.QueryStock(pb.StockQuery(product_id=p), timeout=10)
    assert (stock.reserved, stock.available) == (1, 3)
