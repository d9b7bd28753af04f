"""The gRPC inventory service (shopstream.inventory.v1.Inventory) over Postgres, with health
checking and reflection; the domain errors of its use cases end calls with the codes of
`grpc/errors.py`. `python -m serving_api.grpc`."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace

from serving_api.gen.shopstream.inventory.v1 import inventory_pb2 as pb
from serving_api.gen.shopstream.inventory.v1 import inventory_pb2_grpc as pb_grpc
from serving_api.grpc.errors import DomainErrorStatus
from serving_api.services import inventory
from serving_api.settings import InventoryGrpcSettings
from shopstream.runtime.context import Context
from shopstream.runtime.postgres import create_pool, unit_of_work
from shopstream.runtime.telemetry import current_ids, extract, setup_logging, setup_tracing
from shopstream.serde import AvroSerde, RegistryClient

log = logging.getLogger("shopstream.inventory")
tracer = trace.get_tracer("shopstream.inventory")


def _status(stock: inventory.Stock) -> pb.StockStatus:
    return pb.StockStatus(
        product_id=stock.product_id,
        on_hand=stock.on_hand,
        reserved=stock.reserved,
        available=stock.available,
        version=stock.version,
    )


class InventoryServicer(pb_grpc.InventoryServicer):
    def __init__(self, pool: asyncpg.Pool, serde: AvroSerde) -> None:
        self.pool = pool
        self.serde = serde

    def _context(self, correlation_id: str) -> Context:
        trace_id, traceparent = current_ids()
        return Context(self.serde, "inventory-service", correlation_id or trace_id, trace_id, traceparent)

    async def ReserveStock(self, request: pb.ReserveRequest, context: grpc.aio.ServicerContext) -> pb.ReserveResponse:  # noqa: N802
        with tracer.start_as_current_span("ReserveStock", context=extract(dict(context.invocation_metadata()))):
            if not request.order_id or not request.lines:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "order_id and at least one line are required")
            lines = [(line.product_id, line.qty) for line in request.lines]
            if any(not p or q <= 0 for p, q in lines):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "every line needs a product_id and qty > 0")
            for attempt in range(2):
                try:
                    async with unit_of_work(self.pool) as conn:
                        result = await inventory.reserve(
                            conn, self._context(request.correlation_id), request.order_id, lines
                        )
                    break
                except asyncpg.UniqueViolationError:
                    if attempt:  # a concurrent call for the same order won; the retry sees its reservation
                        raise
            log.info("reserved", extra={"orderId": request.order_id, "traceId": current_ids()[0]})
            return pb.ReserveResponse(
                order_id=result.order_id,
                already_reserved=result.already_reserved,
                stock=[_status(s) for s in result.stock],
            )

    async def ReleaseStock(self, request: pb.ReleaseRequest, context: grpc.aio.ServicerContext) -> pb.ReleaseResponse:  # noqa: N802
        with tracer.start_as_current_span("ReleaseStock", context=extract(dict(context.invocation_metadata()))):
            if not request.order_id:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "order_id is required")
            async with unit_of_work(self.pool) as conn:
                released = await inventory.release(conn, self._context(request.correlation_id), request.order_id)
            return pb.ReleaseResponse(order_id=request.order_id, lines_released=len(released))

    async def QueryStock(self, request: pb.StockQuery, context: grpc.aio.ServicerContext) -> pb.StockStatus:  # noqa: N802
        if not request.product_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "product_id is required")
        async with self.pool.acquire() as conn:
            return _status(await inventory.query(conn, request.product_id))


ORPHAN_AGE_SECONDS = 300.0
SWEEP_EVERY_SECONDS = 60.0


async def sweep_orphans(pool: asyncpg.Pool, serde: AvroSerde) -> None:
    """Every minute, release reservations of orders that never committed (older than 5 minutes)."""
    while True:
        await asyncio.sleep(SWEEP_EVERY_SECONDS)
        try:
            trace_id, traceparent = current_ids()
            ctx = Context(serde, "inventory-service", f"sweep-{trace_id[:8]}", trace_id, traceparent)
            async with unit_of_work(pool) as conn:
                released = await inventory.release_orphans(conn, ctx, ORPHAN_AGE_SECONDS)
            if released:
                log.warning("released orphaned reservations of %s", ", ".join(released))
        except Exception:  # the sweeper must outlive a bad minute
            log.exception("orphan sweep failed")


async def serve(settings: InventoryGrpcSettings) -> None:
    pool = await create_pool(settings.postgres.dsn.get_secret_value(), settings.postgres.pool_size)
    serde = AvroSerde(RegistryClient(settings.registry.url))
    server = grpc.aio.server(interceptors=[DomainErrorStatus()])
    pb_grpc.add_InventoryServicer_to_server(InventoryServicer(pool, serde), server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_name = pb.DESCRIPTOR.services_by_name["Inventory"].full_name
    reflection.enable_server_reflection([service_name, reflection.SERVICE_NAME, health.SERVICE_NAME], server)
    server.add_insecure_port(settings.listen.address)
    await server.start()
    await health_servicer.set(service_name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("inventory gRPC serving on %s", settings.listen.address)
    sweeper = asyncio.create_task(sweep_orphans(pool, serde))
    try:
        await server.wait_for_termination()
    finally:
        sweeper.cancel()
        await pool.close()


def main() -> None:
    settings = InventoryGrpcSettings()
    setup_logging()
    setup_tracing("inventory-service", settings.traces_file)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
