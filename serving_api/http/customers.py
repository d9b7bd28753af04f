"""/api/v1/customers/{me|id}/orders: a customer's order history, newest first, from the
orders_by_customer projection in Cassandra (`serving_api.adapters.orders_view`), paged by a cursor.
OPA decides who reads whose history (`customer.orders.read`: the customer, or an ADMIN)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from serving_api.auth.tokens import Principal
from serving_api.http.deps import principal, resources

router = APIRouter(tags=["customers"])
Caller = Annotated[Principal, Depends(principal)]
Limit = Annotated[int, Query(ge=1, le=100, description="orders per page")]
Cursor = Annotated[str | None, Query(max_length=4096, description="nextCursor of the previous page")]


async def _history(request: Request, who: Principal, customer_id: str, limit: int, cursor: str | None) -> Any:
    res = resources(request)
    await res.authz.require(who, "customer.orders.read", {"owner": customer_id})
    return await res.orders_view.page(customer_id, limit, cursor)


@router.get("/api/v1/customers/me/orders")
async def my_orders(request: Request, who: Caller, limit: Limit = 20, cursor: Cursor = None) -> dict[str, Any]:
    """The caller's own orders, newest first: status, totals, lines, when each status was entered."""
    result: dict[str, Any] = await _history(request, who, who.user_id, limit, cursor)
    return result


@router.get("/api/v1/customers/{customer_id}/orders")
async def customer_orders(
    customer_id: Annotated[str, Path(max_length=200)],
    request: Request,
    who: Caller,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Another customer's orders (ADMIN), or one's own by id."""
    result: dict[str, Any] = await _history(request, who, customer_id, limit, cursor)
    return result
