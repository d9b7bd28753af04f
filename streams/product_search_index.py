"""product_search_index: product.updated + the stock snapshot + flash_sale.started/ended → one
search document per product in OpenSearch, in the index behind the alias `products`
(migrations/opensearch/products_v1.json; `GET /api/v1/products/search`).

One stage keyed by productId merges the four inputs:
- product.updated: sku, name, description, list price, whether it is on sale (`active`); the
  newest by the product row's version wins (contract 1.0 records carry none: version 0, ordered by
  their event time, and a change of theirs reaches the index with the next versioned change of the
  product, its stock or its sales). The category comes with product.updated from contract 1.2 on
  (older records carry none: such a document has no category until the product's next change).
- the stock snapshot (`ecommerce.inventory.stock_snapshot.updated.v1`, written by
  inventory_snapshot): available units and in_stock; the highest stock version wins.
- flash sales: the live and coming sales, merged by `shopstream.domain.flash_sales.PriceMap` (the
  rules of flash_sale_price_map); the document holds them with their times, and the reader picks
  the sale running at the time of the query (`price_at`), so a sale starting needs no write.

The document's version is the sum of the three parts' versions (product row, stock row, price
map), each of which only grows and none of which a duplicate moves: a replay or a reordered batch
cannot put an older document back (external versioning). A withdrawn product (`active` false)
is deleted, as of that version; no document exists before the product's first product.updated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from shopstream.domain import event_type
from shopstream.domain.flash_sales import FlashSale, PriceMap
from shopstream.domain.typed_events import (
    BadEvent,
    FlashSaleEnded,
    FlashSaleStarted,
    ProductUpdated,
    StockSnapshotUpdated,
)
from streams.core import BaseStage, Document, Item, Projection, Stepped, Write
from streams.settings import ProductSearchIndexSettings

NAME = "product_search_index"
SUMMARY = "product.updated + stock snapshot + flash sales → OpenSearch products (search documents)"
SETTINGS = ProductSearchIndexSettings
UPDATED = event_type("ecommerce.product.product.updated.v1")
SNAPSHOT = event_type("ecommerce.inventory.stock_snapshot.updated.v1")
STARTED = event_type("ecommerce.pricing.flash_sale.started.v1")
ENDED = event_type("ecommerce.pricing.flash_sale.ended.v1")
OUTPUTS = ("opensearch products (alias)",)

SearchEvent = ProductUpdated | StockSnapshotUpdated | FlashSaleStarted | FlashSaleEnded


def check(event: SearchEvent) -> None:
    if isinstance(event, FlashSaleStarted) and (event.ends_at <= event.starts_at or event.sale_price.amount_minor < 0):
        raise BadEvent(f"not a valid sale: {event.sale_id} from {event.starts_at} to {event.ends_at}")
    if isinstance(event, StockSnapshotUpdated) and event.version < 0:
        raise BadEvent(f"a stock snapshot with version {event.version}")


class ProductFacts(msgspec.Struct):
    """The product's own data, as of its newest product.updated."""

    sku: str
    name: str
    description: str | None
    price_minor: int
    currency: str
    active: bool
    version: int  # the product row's (0: a contract 1.0 record)
    at: int  # the event's time (orders 1.0 records)
    event_id: str
    category: str | None = None  # contract 1.2


class StockFacts(msgspec.Struct):
    available: int
    version: int
    updated_at: int


class SearchState(msgspec.Struct):
    """What the stage knows of one product (mutable: the stage's own state)."""

    product_id: str
    product: ProductFacts | None = None
    stock: StockFacts | None = None
    sales: dict[str, Any] | None = None  # PriceMap.to_state()

    def price_map(self) -> PriceMap:
        return PriceMap(self.product_id) if self.sales is None else PriceMap.from_state(self.sales)

    @property
    def version(self) -> int:
        return (
            (self.product.version if self.product else 0)
            + (self.stock.version if self.stock else 0)
            + (self.sales["version"] if self.sales else 0)
        )


def _rank(p: ProductFacts) -> tuple[int, int, str]:
    return (p.version, p.at, p.event_id)


class SearchStage(BaseStage[Any, Any]):
    """Keyed by productId: merge the batch's events; one document per changed product."""

    name = "search"
    forwards = False

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def step(self, key: str, state: SearchState | None, items: Sequence[Item[SearchEvent]]) -> Stepped[SearchState]:
        state = state or SearchState(key)
        changed = False
        price_map: PriceMap | None = None
        for item in items:
            event = item.value
            if isinstance(event, ProductUpdated):
                facts = ProductFacts(
                    event.sku,
                    event.name,
                    event.description,
                    event.price.amount_minor,
                    event.price.currency,
                    event.active,
                    event.version or 0,
                    event.envelope.occurred_at,
                    event.envelope.event_id,
                    event.category,
                )
                if state.product is None or _rank(facts) > _rank(state.product):
                    state.product, changed = facts, True
            elif isinstance(event, StockSnapshotUpdated):
                if state.stock is None or event.version > state.stock.version:
                    state.stock, changed = StockFacts(event.available, event.version, event.updated_at), True
            else:
                price_map = price_map or state.price_map()
                if isinstance(event, FlashSaleStarted):
                    changed |= price_map.started(FlashSale.of(event), item.event_time)
                else:
                    changed |= price_map.ended_sale(event.sale_id, event.ends_at, item.event_time)
        if price_map is not None:
            state.sales = price_map.to_state()
        return Stepped(state, self.current(key, state) if changed else [])

    def current(self, key: str, state: SearchState) -> list[Write]:
        product = state.product
        if product is None:
            return []  # nothing to find before the product's own data arrived
        if not product.active:
            return [Document(self.alias, key, state.version, None)]  # withdrawn: the document goes
        body: dict[str, Any] = {
            "product_id": key,
            "sku": product.sku,
            "name": product.name,
            "price_minor": product.price_minor,
            "currency": product.currency,
            "flash_sales": [
                {
                    "sale_id": s["saleId"],
                    "price_minor": s["priceMinor"],
                    "starts_at": s["startsAt"],
                    "ends_at": s["endsAt"],
                }
                for s in state.price_map().to_cache()
            ],
            "version": state.version,
            "updated_at": max(
                product.at,
                state.stock.updated_at if state.stock else 0,
                state.sales["watermark"] if state.sales else 0,
            ),
        }
        if product.description is not None:
            body["description"] = product.description
        if product.category is not None:
            body["category"] = product.category
        if state.stock is not None:  # unknown stock: neither in stock nor out of it
            body["available"] = state.stock.available
            body["in_stock"] = state.stock.available > 0
        return [Document(self.alias, key, state.version, body)]

    def dump(self, state: SearchState) -> Any:
        return msgspec.to_builtins(state)

    def load(self, data: Any) -> SearchState:
        return msgspec.convert(data, SearchState)


def projection(settings: ProductSearchIndexSettings) -> Projection:
    return Projection(
        NAME,
        (UPDATED, SNAPSHOT, STARTED, ENDED),
        (SearchStage(settings.opensearch.products_alias),),
        check=check,
        stores=("opensearch",),
        indices=(settings.opensearch.products_alias,),
    )
