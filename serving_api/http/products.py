"""/api/v1/products: catalog reads are public (the search too: `/search`, from OpenSearch); writes
and price changes need ADMIN."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from serving_api.adapters.product_search import SearchQuery
from serving_api.auth.tokens import Principal
from serving_api.http.deps import context, principal, resources
from serving_api.http.models import PriceIn, ProductIn, ProductPatch, StockAdjustmentIn, money_or_422
from serving_api.http.problems import invalid
from serving_api.services import catalog, idempotency, inventory, product_cache
from serving_api.services.catalog import CATEGORY_PATTERN
from shopstream.domain import NotFound
from shopstream.runtime.postgres import unit_of_work

router = APIRouter(prefix="/api/v1/products", tags=["products"])
Caller = Annotated[Principal, Depends(principal)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post("", status_code=201)
async def create_product(body: ProductIn, request: Request, response: Response, who: Caller) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "product.create")
    async with unit_of_work(res.pool) as conn:
        product = await catalog.create(
            conn,
            context(request, "product-service"),
            who.user_id,
            body.sku,
            body.name,
            body.description,
            money_or_422(body.price),
            body.stock,
            body.category,
        )
    response.headers["Location"] = f"/api/v1/products/{product.id}"
    return product.to_json()


@router.get("")
async def list_products(
    request: Request,
    q: Annotated[str | None, Query(max_length=100, description="Substring of the name or SKU")] = None,
    sku: Annotated[str | None, Query(max_length=64, description="Exactly this SKU")] = None,
    active: bool | None = None,
    min_price_minor: Annotated[int | None, Query(ge=0)] = None,
    max_price_minor: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    async with resources(request).pool.acquire() as conn:
        products, next_cursor = await catalog.search(
            conn,
            q=q,
            sku=sku,
            active=active,
            min_minor=min_price_minor,
            max_minor=max_price_minor,
            limit=limit,
            cursor=cursor,
        )
    return {"items": [p.to_json() for p in products], "nextCursor": next_cursor}


@router.get("/search")
async def search_products(
    request: Request,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Words of the name or description")
    ] = None,
    category: Annotated[str | None, Query(pattern=CATEGORY_PATTERN, description="Only this category")] = None,
    min_price: Annotated[
        int | None, Query(alias="minPrice", ge=0, description="Lowest price now (minor units, inclusive)")
    ] = None,
    max_price: Annotated[
        int | None, Query(alias="maxPrice", ge=0, description="Highest price now (minor units, inclusive)")
    ] = None,
    in_stock: Annotated[
        bool | None, Query(alias="inStock", description="Only products in stock (or out of it)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=4096, description="nextCursor of the previous page")] = None,
) -> dict[str, Any]:
    """Full-text product search (fuzzy, over name and description) from the OpenSearch index the
    product_search_index dataflow writes: results with the price they sell at now (the live flash
    price included), facets (categories, price ranges), paged by a cursor. OpenSearch down: 503
    naming the store."""
    if min_price is not None and max_price is not None and min_price > max_price:
        raise invalid("minPrice must not be above maxPrice", [{"name": "minPrice", "reason": "above maxPrice"}])
    query = SearchQuery(q, category, min_price, max_price, in_stock, limit)
    result: dict[str, Any] = await resources(request).search.search(query, cursor)
    return result


@router.get("/{product_id}")
async def get_product(product_id: str, request: Request) -> dict[str, Any]:
    """Read through the product cache (`product:{id}`, dropped by product.updated events)."""
    res = resources(request)
    found = await product_cache.products(res.pool, res.cache, [product_id])
    if product_id not in found:
        raise NotFound("Product", product_id)
    return found[product_id]


@router.patch("/{product_id}")
async def update_product(product_id: str, body: ProductPatch, request: Request, who: Caller) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "product.update")
    async with unit_of_work(res.pool) as conn:
        changes = body.model_dump(exclude_unset=True)
        product = await catalog.update(conn, context(request, "product-service"), product_id, changes)
    return product.to_json()


@router.delete("/{product_id}")
async def withdraw_product(product_id: str, request: Request, who: Caller) -> dict[str, Any]:
    """Withdraw a product from sale (it stays in orders and history: a soft delete)."""
    res = resources(request)
    await res.authz.require(who, "product.delete")
    async with unit_of_work(res.pool) as conn:
        product = await catalog.update(conn, context(request, "product-service"), product_id, {"active": False})
    return product.to_json()


@router.put("/{product_id}/price")
async def change_price(product_id: str, body: PriceIn, request: Request, who: Caller) -> dict[str, Any]:
    res = resources(request)
    await res.authz.require(who, "product.price.change")
    async with unit_of_work(res.pool) as conn:
        product = await catalog.change_price(
            conn, context(request, "product-service"), who.user_id, product_id, money_or_422(body)
        )
    return product.to_json()


@router.get("/{product_id}/prices")
async def price_history(product_id: str, request: Request) -> dict[str, Any]:
    async with resources(request).pool.acquire() as conn:
        return {"productId": product_id, "versions": await catalog.price_history(conn, product_id)}


@router.get("/{product_id}/stock")
async def get_stock(product_id: str, request: Request) -> dict[str, Any]:
    async with resources(request).pool.acquire() as conn:
        try:
            stock = await inventory.query(conn, product_id)
        except NotFound as exc:
            raise NotFound("Product", product_id) from exc  # REST says "no product P-x"
    return {
        "productId": stock.product_id,
        "onHand": stock.on_hand,
        "reserved": stock.reserved,
        "available": stock.available,
        "version": stock.version,
    }


@router.post("/{product_id}/stock/adjustments")
async def adjust_stock(
    product_id: str,
    body: StockAdjustmentIn,
    request: Request,
    response: Response,
    who: Caller,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """With an `Idempotency-Key` (devices: the IoT ingest), the same key and body apply once and
    replay the first answer (`Idempotent-Replayed: true`); the key commits with the adjustment."""
    res = resources(request)
    await res.authz.require(who, "inventory.adjust")
    if body.delta == 0:
        raise invalid("delta must not be 0", [{"name": "delta", "reason": "zero"}])
    async with unit_of_work(res.pool) as conn:
        if idempotency_key is not None:
            digest = idempotency.request_hash(request.method, request.url.path, body.model_dump())
            replay = await idempotency.claim_in_transaction(
                conn, who.user_id, idempotency_key, digest, res.settings.idempotency_hours
            )
            if replay is not None:
                response.headers["Idempotent-Replayed"] = "true"
                return replay.body  # type: ignore[no-any-return]
        try:
            stock = await inventory.adjust(
                conn, context(request, "inventory-service"), product_id, body.delta, body.reason
            )
        except NotFound as exc:
            raise NotFound("Product", product_id) from exc
        answer = {
            "productId": stock.product_id,
            "onHand": stock.on_hand,
            "reserved": stock.reserved,
            "available": stock.available,
            "version": stock.version,
        }
        if idempotency_key is not None:
            await idempotency.finish_in_transaction(conn, who.user_id, idempotency_key, 200, answer)
    return answer
