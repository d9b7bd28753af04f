"""The order path's gRPC client of the inventory service: bounded exponential retry (3 attempts,
domain spec §8) on transient failures only, trace context passed along as `traceparent`."""

from __future__ import annotations

import asyncio
import random
from typing import cast

import grpc

from serving_api.gen.shopstream.inventory.v1 import inventory_pb2 as pb
from serving_api.gen.shopstream.inventory.v1 import inventory_pb2_grpc as pb_grpc
from shopstream.runtime.telemetry import current_ids

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
ATTEMPTS = 3
BASE_DELAY = 0.05


class InventoryClient:
    def __init__(self, target: str, timeout: float = 2.0) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = pb_grpc.InventoryStub(self._channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout

    async def close(self) -> None:
        await self._channel.close()

    async def reserve(self, order_id: str, lines: list[tuple[str, int]], correlation_id: str) -> pb.ReserveResponse:
        request = pb.ReserveRequest(
            order_id=order_id,
            correlation_id=correlation_id,
            lines=[pb.ReserveLine(product_id=p, qty=q) for p, q in lines],
        )
        return cast(pb.ReserveResponse, await self._call(self._stub.ReserveStock, request))

    async def release(self, order_id: str, correlation_id: str) -> pb.ReleaseResponse:
        request = pb.ReleaseRequest(order_id=order_id, correlation_id=correlation_id)
        return cast(pb.ReleaseResponse, await self._call(self._stub.ReleaseStock, request))

    async def query(self, product_id: str) -> pb.StockStatus:
        return cast(pb.StockStatus, await self._call(self._stub.QueryStock, pb.StockQuery(product_id=product_id)))

    async def _call(self, method: object, request: object) -> object:
        _, traceparent = current_ids()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await method(request, timeout=self._timeout, metadata=(("traceparent", traceparent),))  # type: ignore[operator]
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or attempt == ATTEMPTS:
                    raise
                # exponential with jitter: ~50 ms, ~100 ms
                await asyncio.sleep(BASE_DELAY * 2 ** (attempt - 1) * (0.5 + random.random()))  # noqa: S311
        raise AssertionError("unreachable")
