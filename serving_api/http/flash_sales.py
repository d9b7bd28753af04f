"""/api/v1/flash-sales: starting and ending a flash sale is a price override (ADMIN); reading
the sales is public."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from serving_api.auth.tokens import Principal
from serving_api.http.deps import context, principal, resources
from serving_api.http.models import FlashSaleIn, money_or_422
from serving_api.services import pricing
from shopstream.runtime.postgres import unit_of_work

router = APIRouter(prefix="/api/v1/flash-sales", tags=["flash sales"])
Caller = Annotated[Principal, Depends(principal)]


@router.post("", status_code=201)
async def start_flash_sale(body: FlashSaleIn, request: Request, response: Response, who: Caller) -> dict[str, Any]:
    """Start (or schedule) a flash sale of one product; it leaves as flash_sale.started."""
    res = resources(request)
    await res.authz.require(who, "flash_sale.start")
    async with unit_of_work(res.pool) as conn:
        sale = await pricing.start_sale(
            conn,
            context(request, "pricing-service"),
            who.user_id,
            body.productId,
            money_or_422(body.salePrice),
            body.startsAt,
            body.endsAt,
        )
    response.headers["Location"] = f"/api/v1/flash-sales/{sale['id']}"
    return sale


@router.post("/{sale_id}/end")
async def end_flash_sale(sale_id: str, request: Request, who: Caller) -> dict[str, Any]:
    """End a sale before its scheduled end; it leaves as flash_sale.ended."""
    res = resources(request)
    await res.authz.require(who, "flash_sale.end")
    async with unit_of_work(res.pool) as conn:
        return await pricing.end_sale(conn, context(request, "pricing-service"), who.user_id, sale_id)


@router.get("")
async def list_flash_sales(
    request: Request,
    product_id: Annotated[str | None, Query(alias="productId", max_length=64)] = None,
    include_over: Annotated[bool, Query(alias="includeOver")] = False,
) -> dict[str, Any]:
    async with resources(request).pool.acquire() as conn:
        return {"items": await pricing.list_sales(conn, product_id, include_over)}


@router.get("/{sale_id}")
async def get_flash_sale(sale_id: str, request: Request) -> dict[str, Any]:
    async with resources(request).pool.acquire() as conn:
        return await pricing.get_sale(conn, sale_id)
