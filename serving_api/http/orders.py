"""/api/v1/orders and /api/v1/carts: the storefront's write path."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse

from serving_api.auth.tokens import Principal
from serving_api.http.deps import context, principal, resources
from serving_api.http.models import CancelIn, CartItemIn, FulfillIn, OrderIn
from serving_api.http.problems import Problem, problem_for
from serving_api.observability import ORDER_CREATION_LATENCY, ORDERS_CREATED
from serving_api.services import carts, idempotency, orders
from shopstream.domain import DomainError
from shopstream.runtime.postgres import unit_of_work

router = APIRouter(tags=["orders"])
Caller = Annotated[Principal, Depends(principal)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


async def _idempotent(request: Request, who: Principal, key: str | None, body: Any, create: Any) -> Response:
    """Run `create` once per (user, key, body); replay its response afterwards."""
    res = resources(request)
    digest = idempotency.request_hash(request.method, request.url.path, body)
    replay = await idempotency.claim(res.pool, who.user_id, key or "", digest, res.settings.idempotency_hours)
    if replay is not None:
        return JSONResponse(
            replay.body,
            status_code=replay.status,
            headers={"Idempotent-Replayed": "true"},
            media_type="application/problem+json" if replay.status >= 400 else None,
        )
    try:
        order = await create()
    except (Problem, DomainError) as exc:
        # the answer the handler will give, kept for the key's replays when the client caused it
        problem = exc if isinstance(exc, Problem) else problem_for(exc)
        if problem.status < 500:
            await idempotency.finish(res.pool, who.user_id, key or "", problem.status, problem.body(request.url.path))
        else:
            await idempotency.abandon(res.pool, who.user_id, key or "")
        raise
    except BaseException:
        await idempotency.abandon(res.pool, who.user_id, key or "")
        raise
    await idempotency.finish(res.pool, who.user_id, key or "", 201, order)
    return JSONResponse(order, status_code=201, headers={"Location": f"/api/v1/orders/{order['id']}"})


@router.post("/api/v1/orders", status_code=201, responses={201: {"description": "Created"}})
async def create_order(
    body: OrderIn, request: Request, who: Caller, idempotency_key: IdempotencyKey = None
) -> Response:
    started = time.perf_counter()
    res = resources(request)
    await res.authz.require(who, "order.create")

    async def create() -> dict[str, Any]:
        order = await orders.place(
            res.pool,
            res.stock,
            res.cache,
            context(request, "order-service"),
            who.user_id,
            [(i.productId, i.qty) for i in body.items],
        )
        ORDERS_CREATED.inc()
        ORDER_CREATION_LATENCY.observe((time.perf_counter() - started) * 1000)
        return order

    return await _idempotent(request, who, idempotency_key, body.model_dump(), create)


@router.get("/api/v1/orders/{order_id}")
async def get_order(order_id: str, request: Request, who: Caller) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "order.read", await orders.owner_and_status(res.pool, order_id))
    async with res.pool.acquire() as conn:
        return await orders.get(conn, order_id)


@router.post("/api/v1/orders/{order_id}/pay")
async def pay_order(order_id: str, request: Request, who: Caller) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "order.pay", await orders.owner_and_status(res.pool, order_id))
    ctx = context(request, "order-service")
    return await orders.pay(res.pool, res.payments, ctx, who.user_id, order_id, res.settings.payment_intent_ttl)


@router.post("/api/v1/orders/{order_id}/cancel")
async def cancel_order(order_id: str, request: Request, who: Caller, body: CancelIn | None = None) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "order.cancel", await orders.owner_and_status(res.pool, order_id))
    reason = body.reason if body else "customer request"
    ctx = context(request, "order-service")
    return await orders.cancel(res.pool, ctx, who.user_id, order_id, reason, res.settings.payment_intent_ttl)


@router.post("/api/v1/orders/{order_id}/fulfill")
async def fulfill_order(order_id: str, request: Request, who: Caller, body: FulfillIn | None = None) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "order.fulfill", await orders.owner_and_status(res.pool, order_id))
    return await orders.fulfill(
        res.pool, context(request, "order-service"), who.user_id, order_id, body.trackingNumber if body else None
    )


@router.post("/api/v1/carts", status_code=201)
async def create_cart(request: Request, response: Response, who: Caller) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "cart.create")
    async with unit_of_work(res.pool) as conn:
        cart = await carts.create(conn, who.user_id)
    response.headers["Location"] = f"/api/v1/carts/{cart['id']}"
    return cart


async def _cart_access(request: Request, who: Principal, cart_id: str, action: str) -> None:
    res = resources(request)
    async with res.pool.acquire() as conn:
        await res.authz.require(who, action, await carts.owner(conn, cart_id))


@router.get("/api/v1/carts/{cart_id}")
async def get_cart(cart_id: str, request: Request, who: Caller) -> dict[str, Any]:
    await _cart_access(request, who, cart_id, "cart.read")
    async with resources(request).pool.acquire() as conn:
        return await carts.get(conn, cart_id)


@router.put("/api/v1/carts/{cart_id}/items/{product_id}")
async def set_cart_item(
    cart_id: str, product_id: str, body: CartItemIn, request: Request, who: Caller
) -> dict[str, Any]:
    await _cart_access(request, who, cart_id, "cart.update")
    async with unit_of_work(resources(request).pool) as conn:
        return await carts.set_item(conn, cart_id, product_id, body.qty)


@router.delete("/api/v1/carts/{cart_id}/items/{product_id}")
async def remove_cart_item(cart_id: str, product_id: str, request: Request, who: Caller) -> dict[str, Any]:
    await _cart_access(request, who, cart_id, "cart.update")
    async with unit_of_work(resources(request).pool) as conn:
        return await carts.set_item(conn, cart_id, product_id, 0)


@router.post("/api/v1/carts/{cart_id}/checkout", status_code=201)
async def checkout(cart_id: str, request: Request, who: Caller, idempotency_key: IdempotencyKey = None) -> Response:
    res = resources(request)
    await _cart_access(request, who, cart_id, "cart.checkout")

    async def create() -> dict[str, Any]:
        async with res.pool.acquire() as conn:
            lines = await carts.lines_for_checkout(conn, cart_id)
        order = await orders.place(
            res.pool, res.stock, res.cache, context(request, "order-service"), who.user_id, lines, cart_id=cart_id
        )
        ORDERS_CREATED.inc()
        return order

    return await _idempotent(request, who, idempotency_key, {"cart": cart_id}, create)
