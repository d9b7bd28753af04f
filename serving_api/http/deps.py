"""What routes receive: the process's resources, the caller, the request's context."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from fastapi import Header, Request

from serving_api.adapters.inventory import InventoryClient
from serving_api.auth.policy import Authorizer
from serving_api.auth.tokens import Authenticator, Principal
from serving_api.payments import PaymentAdapter
from serving_api.settings import ApiSettings
from shopstream.runtime.context import Context
from shopstream.runtime.telemetry import current_ids
from shopstream.serde import AvroSerde


@dataclass
class Resources:
    settings: ApiSettings
    pool: asyncpg.Pool
    serde: AvroSerde
    stock: InventoryClient
    authn: Authenticator
    authz: Authorizer
    payments: PaymentAdapter
    cache: aioredis.Redis


def resources(request: Request) -> Resources:
    return request.app.state.resources  # type: ignore[no-any-return]


def principal(request: Request, authorization: str | None = Header(default=None)) -> Principal:
    return resources(request).authn.principal(authorization)


def context(request: Request, producer: str) -> Context:
    trace_id, traceparent = current_ids()
    return Context(resources(request).serde, producer, request.state.correlation_id, trace_id, traceparent)
