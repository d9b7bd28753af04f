"""The FastAPI application: resources per process, correlation ids and spans per request,
RFC 7807 problem+json for every error (never a 500 for bad input)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.fastapi import GraphQLRouter

from serving_api.adapters.inventory import InventoryClient
from serving_api.adapters.orders_view import CustomerOrders
from serving_api.adapters.product_search import ProductSearch
from serving_api.auth.policy import Authorizer
from serving_api.auth.tokens import Authenticator
from serving_api.graphql import schema
from serving_api.graphql.loaders import Loaders
from serving_api.http import customers, flash_sales, orders, products, sse, webhooks, ws
from serving_api.http.deps import resources
from serving_api.http.problems import Problem, internal, problem_for
from serving_api.payments import build_adapter
from serving_api.resources import Resources
from serving_api.settings import ApiSettings
from serving_api.streaming.flash_sales import FlashSaleFeed
from serving_api.streaming.orders import OrderFeed, OrderRouter
from shopstream import __version__
from shopstream.domain import DomainError
from shopstream.runtime.postgres import create_pool
from shopstream.runtime.telemetry import extract
from shopstream.serde import AvroSerde, RegistryClient

log = logging.getLogger("shopstream.api")
tracer = trace.get_tracer("shopstream.api")
PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, body: dict[str, object]) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


class CorrelationMiddleware:
    """Per request: the Correlation-Id (propagated or made), a server span continuing the caller's
    trace, and both ids on the response. Plain ASGI (no BaseHTTPMiddleware): the order path is CPU-bound."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        correlation = (headers.get("correlation-id") or str(uuid.uuid4()))[:200]
        scope.setdefault("state", {})["correlation_id"] = correlation
        name = f"{scope['method']} {scope['path']}"
        with tracer.start_as_current_span(name, context=extract(headers), kind=trace.SpanKind.SERVER) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            span.set_attribute("correlation.id", correlation)
            extra = [(b"correlation-id", correlation.encode("latin-1", "replace")), (b"trace-id", trace_id.encode())]

            async def send_with_ids(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.status_code", message["status"])
                    message["headers"] = [*message.get("headers", []), *extra]
                await send(message)

            await self.app(scope, receive, send_with_ids)


async def _graphql_context(request: Request) -> dict[str, Any]:
    return {"loaders": Loaders(resources(request))}


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.postgres.dsn.get_secret_value(), settings.postgres.pool_size)
        registry = RegistryClient(settings.registry.url)
        res = Resources(
            settings,
            pool,
            AvroSerde(registry),
            InventoryClient(settings.inventory.address),
            Authenticator(settings),
            Authorizer(settings.opa.url),
            build_adapter(settings),
            aioredis.Redis.from_url(
                settings.redis.url,
                socket_timeout=settings.redis.timeout,
                socket_connect_timeout=settings.redis.timeout,
                # a pooled connection that a Redis restart closed gets one immediate reconnect, so
                # it is not mistaken for an outage; an outage still fails in milliseconds (refused)
                health_check_interval=1,
                retry=Retry(NoBackoff(), 1),
                retry_on_error=[RedisConnectionError],
            ),
            CustomerOrders(settings.cassandra, settings.jwt_secret.get_secret_value().encode()),
            ProductSearch(settings.opensearch, settings.jwt_secret.get_secret_value().encode()),
        )
        app.state.resources = res
        app.state.flash_feed = FlashSaleFeed(settings.kafka.bootstrap, res.serde)
        app.state.flash_feed.start()
        app.state.order_feed = OrderFeed(settings.kafka.bootstrap, res.serde)
        app.state.order_router = OrderRouter()
        app.state.order_feed.listen(asyncio.get_running_loop(), app.state.order_router.dispatch)
        app.state.order_feed.start()
        try:
            yield
        finally:
            await asyncio.to_thread(app.state.flash_feed.stop)
            await asyncio.to_thread(app.state.order_feed.stop)
            await res.stock.close()
            await res.authz.close()
            await res.payments.close()
            await res.cache.aclose()
            await asyncio.to_thread(res.orders_view.close)
            await res.search.close()
            registry.close()
            await pool.close()

    app = FastAPI(
        title="shopstream storefront API",
        version=__version__,
        lifespan=lifespan,
        description="Writes go to Postgres only; every change leaves as an Avro event through the outbox.",
    )
    app.include_router(products.router)
    app.include_router(orders.router)
    app.include_router(customers.router)
    app.include_router(flash_sales.router)
    app.include_router(webhooks.router)
    app.include_router(sse.router)
    app.include_router(ws.router)
    app.include_router(GraphQLRouter(schema, context_getter=_graphql_context), prefix="/graphql")

    app.add_middleware(CorrelationMiddleware)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> Response:
        # a bug, not bad input: logged with its ids, answered as a problem
        log.exception(
            "unhandled error", exc_info=exc, extra={"correlationId": getattr(request.state, "correlation_id", None)}
        )
        return problem_response(500, internal().body(request.url.path))

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc.status, exc.body(request.url.path))

    @app.exception_handler(DomainError)
    async def on_domain_error(request: Request, exc: DomainError) -> Response:
        # the one place a use case's refusal becomes an HTTP answer (the table: problems.STATUS)
        problem = problem_for(exc)
        if problem.status == 500:
            log.error(
                "unmapped domain error %s",
                type(exc).__name__,
                exc_info=exc,
                extra={"correlationId": getattr(request.state, "correlation_id", None)},
            )
        return problem_response(problem.status, problem.body(request.url.path))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        params = [
            {"name": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "reason": e["msg"]}
            for e in exc.errors()
        ]
        return problem_response(
            422,
            Problem(
                422, "validation", "The request is not valid", f"{len(params)} invalid field(s)", invalid_params=params
            ).body(request.url.path),
        )

    @app.exception_handler(asyncpg.DataError)
    async def on_bad_data(request: Request, exc: asyncpg.DataError) -> Response:
        # values Postgres cannot store (a NUL character, an out-of-range number): the client's input
        return problem_response(
            422,
            Problem(422, "validation", "The request is not valid", f"a value cannot be stored: {exc}").body(
                request.url.path
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
        return problem_response(exc.status_code, Problem(exc.status_code, slug, str(exc.detail)).body(request.url.path))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
