"""/api/v1/webhooks/subscriptions: partners' webhook subscriptions, ADMIN only (OPA). The secret
that signs a subscription's POSTs is in the creation's answer and never again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from serving_api.auth.tokens import Principal
from serving_api.http.deps import principal, resources
from serving_api.http.models import Strict
from shopstream.runtime.postgres import unit_of_work
from webhooks import SUBSCRIBABLE
from webhooks import subscriptions as subs

router = APIRouter(prefix="/api/v1/webhooks/subscriptions", tags=["webhooks"])
Caller = Annotated[Principal, Depends(principal)]


class SubscriptionIn(Strict):
    partnerId: str = Field(min_length=1, max_length=64, examples=["acme"])  # noqa: N815 (the API's JSON names)
    url: str = Field(min_length=1, max_length=2000, examples=["https://partner.example/hooks/shopstream"])
    eventTypes: list[str] = Field(min_length=1, max_length=len(SUBSCRIBABLE), examples=[list(SUBSCRIBABLE[:2])])  # noqa: N815
    secret: str | None = Field(
        default=None, min_length=subs.MIN_SECRET, max_length=200, description="Default: a generated one"
    )


@router.post("", status_code=201)
async def create_subscription(
    body: SubscriptionIn, request: Request, response: Response, who: Caller
) -> dict[str, Any]:
    """Subscribe a partner's endpoint to event types; the answer's `secret` is shown only this once."""
    res = resources(request)
    await res.authz.require(who, "webhook.subscription.create")
    async with unit_of_work(res.pool) as conn:
        sub = await subs.create_subscription(
            conn,
            who.user_id,
            body.partnerId,
            body.url,
            body.eventTypes,
            body.secret,
            allow_private_targets=res.settings.webhook_allow_private_targets,
        )
    response.headers["Location"] = f"{router.prefix}/{sub['id']}"
    return sub


@router.get("")
async def list_subscriptions(
    request: Request,
    who: Caller,
    partner_id: Annotated[str | None, Query(alias="partnerId", max_length=64)] = None,
) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "webhook.subscription.read")
    async with res.pool.acquire() as conn:
        return {"items": await subs.list_subscriptions(conn, partner_id)}


@router.get("/{subscription_id}")
async def get_subscription(subscription_id: str, request: Request, who: Caller) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "webhook.subscription.read")
    async with res.pool.acquire() as conn:
        return await subs.get_subscription(conn, subscription_id)


@router.get("/{subscription_id}/attempts")
async def list_attempts(
    subscription_id: str,
    request: Request,
    who: Caller,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The subscription's latest delivery attempts, newest first."""
    res = resources(request)
    await res.authz.require(who, "webhook.subscription.read")
    async with res.pool.acquire() as conn:
        return {"items": await subs.list_attempts(conn, subscription_id, limit)}


@router.delete("/{subscription_id}", status_code=204)
async def delete_subscription(subscription_id: str, request: Request, who: Caller) -> Response:
    """Unsubscribe: nothing more is delivered (queued deliveries are dropped); history is kept."""
    res = resources(request)
    await res.authz.require(who, "webhook.subscription.delete")
    async with unit_of_work(res.pool) as conn:
        await subs.delete_subscription(conn, who.user_id, subscription_id)
    return Response(status_code=204)
