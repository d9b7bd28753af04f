"""Product search, read from OpenSearch's `products` alias (written by the product_search_index
dataflow): full text over name and description (multi_match, fuzziness AUTO), filters, facets
(categories, price ranges) and the price each product sells at now, its live flash price included
(`shopstream.domain.flash_sales.price_at` over the sales its document holds).

The price filters and the price-range facet use the same rule as the results: a product's price is
its lowest running flash-sale price if it has a running sale, else its list price (for a product
with several overlapping sales, a sale's price in range counts).

Pages go by `search_after`; the cursor handed to clients is the last hit's sort values with an
HMAC over them and the query they page, so a cursor cannot be forged or used with other
parameters. A full-text search (sorted by relevance) pages over a point in time opened with its
first page: scores move as the index changes (every product indexed changes the term statistics),
so `search_after` on a score from the live index would skip or repeat hits between pages; on the
point in time every page sees the index as the first one did. The point in time lives
`PIT_KEEP_ALIVE` past each page (a later page is a 422 `cursor-expired`: search again) and is closed
with the last page; should OpenSearch refuse to open one (its open-PIT limit), that search pages
over the live index as it is. A browse without `q` is sorted by product id alone, which new
documents cannot reorder: it pages over the live index. An OpenSearch that does not answer is
`StoreUnavailable` naming the store — the search is never answered from Postgres instead."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from serving_api.adapters.stores import StoreUnavailable
from shopstream.domain import Invalid
from shopstream.domain.flash_sales import price_at
from shopstream.runtime.settings import OpenSearch

MAX_PAGE = 100
PIT_KEEP_ALIVE = "5m"
_MAC = 16  # bytes of HMAC-SHA256 kept in a cursor
# the price-range facet's buckets, in minor units: [from, to)
PRICE_RANGES: tuple[tuple[int | None, int | None], ...] = (
    (None, 1_000),
    (1_000, 2_500),
    (2_500, 5_000),
    (5_000, 10_000),
    (10_000, 25_000),
    (25_000, None),
)
FIELDS = ("name^3", "description")


@dataclass(frozen=True)
class SearchQuery:
    q: str | None = None
    category: str | None = None
    min_price: int | None = None  # minor units, inclusive
    max_price: int | None = None  # minor units, inclusive
    in_stock: bool | None = None
    limit: int = 20

    def key(self) -> bytes:
        """What a cursor is bound to: everything but the page size."""
        return json.dumps([self.q, self.category, self.min_price, self.max_price, self.in_stock]).encode()


def _range(field: str, low: int | None, high: int | None, high_inclusive: bool) -> dict[str, Any]:
    bounds: dict[str, int] = {}
    if low is not None:
        bounds["gte"] = low
    if high is not None:
        bounds["lte" if high_inclusive else "lt"] = high
    return {"range": {field: bounds}}


def _running(now: int, price: dict[str, Any] | None = None) -> dict[str, Any]:
    running: list[dict[str, Any]] = [
        {"range": {"flash_sales.starts_at": {"lte": now}}},
        {"range": {"flash_sales.ends_at": {"gt": now}}},
    ]
    return {"nested": {"path": "flash_sales", "query": {"bool": {"filter": running + ([price] if price else [])}}}}


def price_clause(low: int | None, high: int | None, now: int, high_inclusive: bool = True) -> dict[str, Any]:
    """Products whose price now (flash price when a sale runs, else list price) is in range."""
    listed = {"bool": {"filter": [_range("price_minor", low, high, high_inclusive)], "must_not": [_running(now)]}}
    on_sale = _running(now, _range("flash_sales.price_minor", low, high, high_inclusive))
    return {"bool": {"should": [listed, on_sale], "minimum_should_match": 1}}


def _pit_gone(response: httpx.Response) -> bool:
    """OpenSearch's answer to a search on a point in time that expired or was closed."""
    return response.status_code == 404 or (response.is_error and "search_context_missing" in response.text)


def _bucket_key(low: int | None, high: int | None) -> str:
    return f"{'*' if low is None else low}-{'*' if high is None else high}"


class ProductSearch:
    def __init__(self, settings: OpenSearch, cursor_secret: bytes) -> None:
        self.settings = settings
        self.secret = cursor_secret
        self.http = httpx.AsyncClient(base_url=settings.url.rstrip("/"), timeout=settings.timeout)

    # --- cursors -----------------------------------------------------------------------------
    def _mac(self, query: SearchQuery, values: bytes) -> bytes:
        return hmac.new(self.secret, query.key() + b"\x00" + values, hashlib.sha256).digest()[:_MAC]

    def cursor(self, query: SearchQuery, sort: list[Any], pit: str | None = None) -> str:
        page: Any = sort if pit is None else {"after": sort, "pit": pit}
        values = json.dumps(page, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(self._mac(query, values) + values).decode().rstrip("=")

    def search_after(self, query: SearchQuery, cursor: str) -> tuple[list[Any], str | None]:
        """The sort values the cursor continues after, and the point in time it pages over."""
        invalid = Invalid(
            "the cursor is not one this API gave out for this search",
            code="invalid-cursor",
            title="Invalid cursor",
            invalid_params=[{"name": "cursor", "reason": "not a cursor of this search"}],
        )
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        mac, values = raw[:_MAC], raw[_MAC:]
        if not values or not hmac.compare_digest(mac, self._mac(query, values)):
            raise invalid
        page = json.loads(values)
        if isinstance(page, dict) and isinstance(page.get("after"), list) and isinstance(page.get("pit"), str):
            return page["after"], page["pit"]
        if not isinstance(page, list):
            raise invalid
        return page, None

    # --- points in time ----------------------------------------------------------------------
    async def _open_pit(self) -> str | None:
        """A point in time over the alias, or None when OpenSearch will not open one now."""
        try:
            response = await self.http.post(
                f"/{self.settings.products_alias}/_search/point_in_time", params={"keep_alive": PIT_KEEP_ALIVE}
            )
        except httpx.HTTPError as exc:
            raise self._unavailable() from exc
        if response.status_code >= 500 and "point in time" not in response.text.lower():
            raise self._unavailable()
        if response.is_error:
            return None  # too many open (search.max_open_pit_context): this search pages over the live index
        pit: str = response.json()["pit_id"]
        return pit

    async def _close_pit(self, pit: str) -> None:
        with contextlib.suppress(httpx.HTTPError):  # it expires after PIT_KEEP_ALIVE anyway
            await self.http.request("DELETE", "/_search/point_in_time", json={"pit_id": [pit]})

    # --- reads -------------------------------------------------------------------------------
    def body(self, query: SearchQuery, now: int, after: list[Any] | None) -> dict[str, Any]:
        filters: list[dict[str, Any]] = []
        if query.category is not None:
            filters.append({"term": {"category": query.category}})
        if query.in_stock is not None:
            filters.append({"term": {"in_stock": query.in_stock}})
        if query.min_price is not None or query.max_price is not None:
            filters.append(price_clause(query.min_price, query.max_price, now))
        must: dict[str, Any] = (
            {"multi_match": {"query": query.q, "fields": list(FIELDS), "fuzziness": "AUTO"}}
            if query.q
            else {"match_all": {}}
        )
        sort: list[Any] = ([{"_score": "desc"}] if query.q else []) + [{"product_id": "asc"}]
        body: dict[str, Any] = {
            "size": min(max(query.limit, 1), MAX_PAGE),
            "query": {"bool": {"must": [must], "filter": filters}},
            "sort": sort,
            "track_total_hits": True,
            "aggs": {
                "categories": {"terms": {"field": "category", "size": 20}},
                "price_ranges": {
                    "filters": {
                        "filters": {
                            _bucket_key(low, high): price_clause(low, high, now, high_inclusive=False)
                            for low, high in PRICE_RANGES
                        }
                    }
                },
            },
        }
        if after is not None:
            body["search_after"] = after
        return body

    async def search(self, query: SearchQuery, cursor: str | None, now: int | None = None) -> dict[str, Any]:
        """{"items": [...], "total": n, "facets": {...}, "nextCursor": str | None}."""
        at = int(time.time() * 1000) if now is None else now
        after, pit = (None, None) if cursor is None else self.search_after(query, cursor)
        body = self.body(query, at, after)
        if cursor is None and query.q:
            pit = await self._open_pit()
        if pit is not None:
            body["pit"] = {"id": pit, "keep_alive": PIT_KEEP_ALIVE}
        path = "/_search" if pit is not None else f"/{self.settings.products_alias}/_search"
        try:
            response = await self.http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise self._unavailable() from exc
        if pit is not None and cursor is not None and _pit_gone(response):
            raise Invalid(
                f"the cursor's pages have expired (a search's pages stay consistent for {PIT_KEEP_ALIVE} "
                "after each page): search again",
                code="cursor-expired",
                title="Cursor expired",
                invalid_params=[{"name": "cursor", "reason": "expired"}],
            )
        if response.status_code == 400 and after is not None:
            raise Invalid("the cursor no longer matches the search", code="invalid-cursor")
        if response.is_error:
            raise self._unavailable()
        answer = response.json()
        hits = answer["hits"]["hits"]
        pit = answer.get("pit_id", pit)
        items = [self._item(h, at) for h in hits]
        aggs = answer.get("aggregations", {})
        ranges = aggs.get("price_ranges", {}).get("buckets", {})
        facets = {
            "categories": [
                {"value": b["key"], "count": b["doc_count"]} for b in aggs.get("categories", {}).get("buckets", [])
            ],
            "priceRanges": [
                {"fromMinor": low, "toMinor": high, "count": ranges.get(_bucket_key(low, high), {}).get("doc_count", 0)}
                for low, high in PRICE_RANGES
            ],
        }
        more = len(hits) == body["size"] and bool(hits)
        if pit is not None and not more:
            await self._close_pit(pit)
        return {
            "items": items,
            "total": answer["hits"]["total"]["value"],
            "facets": facets,
            "nextCursor": self.cursor(query, hits[-1]["sort"], pit) if more else None,
        }

    def _unavailable(self) -> StoreUnavailable:
        return StoreUnavailable("OpenSearch (the product search store) did not answer; retry later", store="opensearch")

    @staticmethod
    def _item(hit: dict[str, Any], now: int) -> dict[str, Any]:
        doc = hit["_source"]
        sales = [
            {"saleId": s["sale_id"], "priceMinor": s["price_minor"], "startsAt": s["starts_at"], "endsAt": s["ends_at"]}
            for s in doc.get("flash_sales", [])
        ]
        sale = price_at(sales, now)
        listed = {"amountMinor": doc["price_minor"], "currency": doc["currency"]}
        return {
            "productId": doc["product_id"],
            "sku": doc.get("sku"),
            "name": doc["name"],
            "description": doc.get("description"),
            "category": doc.get("category"),
            "price": listed if sale is None else {"amountMinor": sale["priceMinor"], "currency": doc["currency"]},
            "listPrice": listed,
            "flashSale": None if sale is None else {"saleId": sale["saleId"], "endsAt": sale["endsAt"]},
            "inStock": doc.get("in_stock"),
            "available": doc.get("available"),
            "score": hit.get("_score"),
        }

    async def close(self) -> None:
        await self.http.aclose()
