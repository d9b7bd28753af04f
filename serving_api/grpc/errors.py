"""Domain errors as gRPC status codes, in one place: `DomainErrorStatus` intercepts every unary
method of the server, and a domain error a method lets through ends the call with its code from
`CODES` and its detail. An unmapped one is INTERNAL, without its text."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from shopstream.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    IllegalTransition,
    InsufficientStock,
    Invalid,
    Malformed,
    NotFound,
    PaymentDeclined,
    PaymentRefused,
    Unauthenticated,
    Unavailable,
    nearest,
)

# the status code of each domain error; a subclass without a row takes its nearest base's
CODES: dict[type[DomainError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    Invalid: grpc.StatusCode.INVALID_ARGUMENT,
    Malformed: grpc.StatusCode.INVALID_ARGUMENT,
    PaymentRefused: grpc.StatusCode.INVALID_ARGUMENT,
    # refused by the current state (stock, the order's status, an existing reservation)
    Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    IllegalTransition: grpc.StatusCode.FAILED_PRECONDITION,
    InsufficientStock: grpc.StatusCode.FAILED_PRECONDITION,
    PaymentDeclined: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
}


def code_for(error: type[DomainError]) -> grpc.StatusCode | None:
    """The status code of a domain error class; None when neither it nor a base is mapped."""
    return nearest(CODES, error)


def status_of(error: DomainError) -> tuple[grpc.StatusCode, str]:
    """(code, details) that a call refused with `error` ends with."""
    code = code_for(type(error))
    if code is None:
        return grpc.StatusCode.INTERNAL, "internal error"
    return code, error.detail or error.title


Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _answering(behaviour: Behaviour) -> Behaviour:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(request, context)
        except DomainError as error:
            await context.abort(*status_of(error))  # raises: the call ends here
            raise

    return call


class DomainErrorStatus(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps each unary-unary handler (the Inventory methods, the health check); streaming ones
    (reflection, health watch) pass through untouched."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _answering(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
