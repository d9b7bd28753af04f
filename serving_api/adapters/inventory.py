"""The order path's gRPC client of the inventory service: bounded exponential retry (3 attempts,
domain spec §8) on transient failures only, trace context passed along as `traceparent`. A call
that fails ends as a domain error: the service's refusals as InsufficientStock (FAILED_PRECONDITION)
or Invalid (the lines: NOT_FOUND, INVALID_ARGUMENT); anything else, no answer included, as
Unavailable."""

from __future__ import annotations

import asyncio
import random
from typing import cast

import grpc

from serving_api.gen.shopstream.inventory.v1 import inventory_pb2 as pb
from serving_api.gen.shopstream.inventory.v1 import inventory_pb2_grpc as pb_grpc
from serving_api.observability import RESERVATION_FAILURES
from shopstream.domain import DomainError, InsufficientStock, Invalid, Unavailable
from shopstream.runtime.telemetry import current_ids

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
ATTEMPTS = 3
BASE_DELAY = 0.05


def domain_error(code: grpc.StatusCode, details: str) -> DomainError:
    """What a failed call means for the order: refused (nothing was reserved) or unknown."""
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return InsufficientStock(details)
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        return Invalid(details or "the order's lines were refused")
    return Unavailable(f"{code.name}: {details}", code="inventory-unavailable", title="Inventory service unavailable")


class InventoryClient:
    def __init__(self, target: str, timeout: float = 2.0) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = pb_grpc.InventoryStub(self._channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout

    async def close(self) -> None:
        await self._channel.close()

    async def reserve(self, order_id: str, lines: list[tuple[str, int]], correlation_id: str) -> pb.ReserveResponse:
        """All lines or none; a refusal or failure is counted by its gRPC code."""
        request = pb.ReserveRequest(
            order_id=order_id,
            correlation_id=correlation_id,
            lines=[pb.ReserveLine(product_id=p, qty=q) for p, q in lines],
        )
        return cast(pb.ReserveResponse, await self._call(self._stub.ReserveStock, request, count_failures=True))

    async def release(self, order_id: str, correlation_id: str) -> pb.ReleaseResponse:
        request = pb.ReleaseRequest(order_id=order_id, correlation_id=correlation_id)
        return cast(pb.ReleaseResponse, await self._call(self._stub.ReleaseStock, request))

    async def query(self, product_id: str) -> pb.StockStatus:
        return cast(pb.StockStatus, await self._call(self._stub.QueryStock, pb.StockQuery(product_id=product_id)))

    async def _call(self, method: object, request: object, count_failures: bool = False) -> object:
        _, traceparent = current_ids()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await method(request, timeout=self._timeout, metadata=(("traceparent", traceparent),))  # type: ignore[operator]
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or attempt == ATTEMPTS:
                    if count_failures:
                        RESERVATION_FAILURES.labels(exc.code().name.lower()).inc()
                    raise domain_error(exc.code(), exc.details() or "") from exc
                # exponential with jitter: ~50 ms, ~100 ms
                await asyncio.sleep(BASE_DELAY * 2 ** (attempt - 1) * (0.5 + random.random()))  # noqa: S311
        raise AssertionError("unreachable")
