"""`/graphql` (strawberry): products with their inventory and current (flash) price, for
storefront clients. Reads only: products through the product cache, inventory from the snapshot
projection (`inventory:{id}`, Postgres when absent), prices from the flash-sale price map; each
batched per request (DataLoaders: no N+1). Field names are the API's, never table names; errors
carry `extensions.code`; depth, aliases and tokens are limited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.types import Info

from serving_api.adapters.product_search import SearchQuery
from serving_api.graphql.errors import DomainErrorCodes, unexpected
from serving_api.graphql.loaders import Loaders, product_view
from serving_api.services import catalog
from shopstream.domain import Money as DomainMoney

MAX_DEPTH = 6


@strawberry.type(description="An amount of money: a decimal string (never a float) and its ISO 4217 currency.")
class Money:
    amount: str
    currency: str

    @classmethod
    def of(cls, minor: int, currency: str) -> Money:
        return cls(amount=str(DomainMoney(minor, currency).decimal()), currency=currency)


@strawberry.type(description="A product's stock: units on hand, held by orders, and available to order.")
class Inventory:
    product_id: strawberry.ID
    on_hand: int
    reserved: int
    available: int
    version: int


@strawberry.type(description="A flash sale running now.")
class FlashSale:
    sale_id: strawberry.ID
    price: Money
    regular_price: Money
    starts_at: datetime
    ends_at: datetime


@strawberry.type
class Product:
    id: strawberry.ID
    sku: str
    name: str
    description: str | None
    category: str = strawberry.field(description="The product's category: a lowercase slug, 'general' unless set.")
    active: bool
    price: Money = strawberry.field(description="The list price (the current SCD2 version).")
    # what a cached aggregate already holds; resolved per request otherwise
    _view: strawberry.Private[dict[str, Any]]

    @strawberry.field(description="What one unit sells at now: a running flash sale's price, else the list price.")
    async def current_price(self, info: Info) -> Money:
        sale = await self._flash_sale(info)
        return sale.price if sale else self.price

    @strawberry.field(description="The flash sale running now, if any.")
    async def flash_sale(self, info: Info) -> FlashSale | None:
        return await self._flash_sale(info)

    @strawberry.field(description="Stock, from the inventory snapshot.")
    async def inventory(self, info: Info) -> Inventory | None:
        stock = self._view["inventory"] if "inventory" in self._view else await _loaders(info).inventory.load(self.id)
        return Inventory(**stock) if stock else None

    async def _flash_sale(self, info: Info) -> FlashSale | None:
        sale = await _loaders(info).flash.load(self.id)
        if not sale:
            return None
        return FlashSale(
            sale_id=sale["saleId"],
            price=Money.of(sale["priceMinor"], sale["currency"]),
            regular_price=Money.of(sale["regularMinor"], sale["currency"]),
            starts_at=datetime.fromtimestamp(sale["startsAt"] / 1000, UTC),
            ends_at=datetime.fromtimestamp(sale["endsAt"] / 1000, UTC),
        )

    @classmethod
    def of(cls, view: dict[str, Any]) -> Product:
        p = view["product"]
        return cls(
            id=p["id"],
            sku=p["sku"],
            name=p["name"],
            description=p["description"],
            category=p["category"],
            active=p["active"],
            price=Money(amount=p["price"]["amount"], currency=p["price"]["currency"]),
            _view=view,
        )


@strawberry.input(description="Which products: all filters are optional and combine.")
class ProductFilter:
    q: str | None = strawberry.field(default=None, description="Substring of the name or SKU.")
    text: str | None = strawberry.field(
        default=None,
        description=(
            "Words of the name or description, searched (fuzzy) in the product search index (OpenSearch): "
            "the page is in relevance order, active products only; not with `q`."
        ),
    )
    active: bool | None = None
    min_price_minor: int | None = None
    max_price_minor: int | None = None


@strawberry.type
class ProductPage:
    items: list[Product]
    next_cursor: str | None = strawberry.field(description="Pass as `after` for the next page; null on the last.")


def _loaders(info: Info) -> Loaders:
    return info.context["loaders"]  # type: ignore[no-any-return]


@strawberry.type
class Query:
    @strawberry.field(description="One product with its inventory (cached 30 s) and current price.")
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:  # noqa: A002 (GraphQL's name)
        view = await product_view(_loaders(info), str(id))
        if view is None:
            raise GraphQLError(f"no product {id}", extensions={"code": "NOT_FOUND"})
        return Product.of(view)

    @strawberry.field(description="A page of products in id order.")
    async def products(
        self,
        info: Info,
        filter: ProductFilter | None = None,
        first: int = 20,
        after: str | None = None,  # noqa: A002
    ) -> ProductPage:
        if not 1 <= first <= 100:
            raise GraphQLError("`first` is between 1 and 100", extensions={"code": "BAD_USER_INPUT"})
        f = filter or ProductFilter()
        if f.text is not None:
            return await _text_search(info, f, first, after)
        async with _loaders(info).res.pool.acquire() as conn:
            found, cursor = await catalog.search(
                conn,
                q=f.q,
                active=f.active,
                min_minor=f.min_price_minor,
                max_minor=f.max_price_minor,
                limit=first,
                cursor=after,
            )
        return ProductPage(items=[Product.of({"product": p.to_json()}) for p in found], next_cursor=cursor)

    @strawberry.field(description="A product's stock, from the inventory snapshot.")
    async def product_inventory(self, info: Info, id: strawberry.ID) -> Inventory:  # noqa: A002
        stock = await _loaders(info).inventory.load(str(id))
        if stock is None:
            raise GraphQLError(f"no product {id}", extensions={"code": "NOT_FOUND"})
        return Inventory(**stock)


async def _text_search(info: Info, f: ProductFilter, first: int, after: str | None) -> ProductPage:
    """`products(filter: {text})`: the ids from the search index, each product as `product` reads it."""
    if f.q is not None or f.active is False or not f.text or len(f.text) > 200:
        raise GraphQLError(
            "`text` is 1 to 200 characters, without `q`, over active products", extensions={"code": "BAD_USER_INPUT"}
        )
    loaders = _loaders(info)
    query = SearchQuery(f.text, min_price=f.min_price_minor, max_price=f.max_price_minor, limit=first)
    found = await loaders.res.search.search(query, after)
    views = await asyncio.gather(*(product_view(loaders, hit["productId"]) for hit in found["items"]))  # batched
    return ProductPage(items=[Product.of(v) for v in views if v is not None], next_cursor=found["nextCursor"])


schema = strawberry.Schema(
    query=Query,
    extensions=[  # factories: a fresh extension per request
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=20),
        lambda: MaxTokensLimiter(max_token_count=2_000),
        # a domain error gets its code (graphql/errors.py); any other exception that is not a
        # GraphQL error (a bug) reads "Unexpected error."
        lambda: MaskErrors(should_mask_error=unexpected),
        DomainErrorCodes,
    ],
)


def sdl() -> str:
    return schema.as_str() + "\n"


__all__ = ["schema", "sdl"]
