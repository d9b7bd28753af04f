"""What routes receive: the process's resources, the caller, the request's context."""

from __future__ import annotations

from fastapi import Header, Request

from serving_api.auth.tokens import Principal
from serving_api.resources import Resources
from shopstream.runtime.context import Context
from shopstream.runtime.telemetry import current_ids


def resources(request: Request) -> Resources:
    return request.app.state.resources  # type: ignore[no-any-return]


def principal(request: Request, authorization: str | None = Header(default=None)) -> Principal:
    return resources(request).authn.principal(authorization)


def context(request: Request, producer: str) -> Context:
    trace_id, traceparent = current_ids()
    return Context(resources(request).serde, producer, request.state.correlation_id, trace_id, traceparent)
