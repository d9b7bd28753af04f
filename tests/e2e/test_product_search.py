"""End to end: a product created through the REST API is found by a word of its name in
`GET /api/v1/products/search` (OpenSearch, written by the product_search_index dataflow); renamed
through the API it is found by its new name and not by the old; facets come with the results; a text
search's pages neither skip nor repeat a hit when the index changes between them, and a cursor
whose point in time is gone is a 422 `cursor-expired`; bad parameters are a 422 problem; with
OpenSearch down the search is a 503 naming the store."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from dev.stack.stack import Stack
from tests.integration.api_client import Storefront
from tests.support import eventually


def search(shop: Storefront, **params: Any) -> httpx.Response:
    return shop.http.get("/api/v1/products/search", params=params)


@pytest.fixture(scope="module", autouse=True)
def search_answers(shop: Storefront) -> None:
    """A freshly started OpenSearch may take longer than the API's read timeout over its first
    queries (the API then answers 503, retry later, as it should): wait until it answers in time."""
    eventually(lambda: search(shop, q="mug").status_code == 200, timeout=90, what="a first search answered")


def ids(shop: Storefront, **params: Any) -> list[str]:
    r = search(shop, **params)
    assert r.status_code == 200, r.text
    return [i["productId"] for i in r.json()["items"]]


def a_product(shop: Storefront, name: str, amount: str = "42.00") -> dict[str, Any]:
    made = shop.product(stock=4, amount=amount)
    r = shop.http.patch(f"/api/v1/products/{made['id']}", headers=shop.auth("admin"), json={"name": name})
    assert r.status_code == 200, r.text
    return made


def test_the_category_of_a_product_is_a_filter_and_a_facet(shop: Storefront) -> None:
    word, category = f"brelloq{uuid.uuid4().hex[:6]}", f"cat-{uuid.uuid4().hex[:6]}"
    made = shop.product(stock=2, amount="9.00", category=category)
    r = shop.http.patch(f"/api/v1/products/{made['id']}", headers=shop.auth("admin"), json={"name": f"Mug {word}"})
    assert r.status_code == 200, r.text
    eventually(lambda: ids(shop, q=word, category=category) == [made["id"]], timeout=60, what="found by category")
    assert ids(shop, q=word, category="other-category") == []
    facets = search(shop, q=word).json()["facets"]["categories"]
    assert {"value": category, "count": 1} in facets, facets


def test_a_product_is_found_by_a_word_of_its_name_and_after_a_rename_by_the_new_one_only(shop: Storefront) -> None:
    word, new = f"zorblax{uuid.uuid4().hex[:6]}", f"quintor{uuid.uuid4().hex[:6]}"
    product = a_product(shop, f"Enamel {word} kettle")
    pid = product["id"]
    eventually(lambda: pid in ids(shop, q=word), timeout=60, what=f"{pid} found by {word}")

    def document() -> tuple[dict[str, Any], dict[str, Any]] | None:
        # the name, the price and the stock reach the document from different events: found by
        # its new name, it may not hold the price and the stock yet
        found = search(shop, q=word).json()
        item = next(i for i in found["items"] if i["productId"] == pid)
        whole = item["price"] == {"amountMinor": 4200, "currency": "USD"} and item["inStock"] is True
        return (found, item) if whole else None

    found, _ = eventually(document, timeout=60, what=f"{pid}'s price and stock in its document")
    assert {"categories", "priceRanges"} <= set(found["facets"])
    assert sum(b["count"] for b in found["facets"]["priceRanges"]) >= 1
    assert ids(shop, q=word, minPrice=4000, maxPrice=4500, inStock="true") == [pid]
    assert ids(shop, q=word, maxPrice=4000) == []

    r = shop.http.patch(f"/api/v1/products/{pid}", headers=shop.auth("admin"), json={"name": f"Enamel {new} kettle"})
    assert r.status_code == 200, r.text
    eventually(
        lambda: pid in ids(shop, q=new) and pid not in ids(shop, q=word),
        timeout=60,
        what=f"{pid} found by {new} and not by {word}",
    )

    # withdrawn: the document goes
    assert shop.http.delete(f"/api/v1/products/{pid}", headers=shop.auth("admin")).status_code == 200
    eventually(lambda: pid not in ids(shop, q=new), timeout=60, what=f"{pid} gone from the index")


def test_pages_go_by_a_cursor_that_cannot_be_forged(shop: Storefront) -> None:
    word = f"pagex{uuid.uuid4().hex[:6]}"
    made = {a_product(shop, f"Mug {word} {n}")["id"] for n in range(3)}
    eventually(lambda: set(ids(shop, q=word)) == made, timeout=60, what="3 products in the index")
    first = search(shop, q=word, limit=2).json()
    assert len(first["items"]) == 2 and first["nextCursor"]
    # the index changes between the pages (a product more with the word: its term statistics, so
    # every score, move): the second page continues the first one's view, nothing skipped or repeated
    later = a_product(shop, f"Mug {word} later")["id"]
    eventually(lambda: later in ids(shop, q=word), timeout=60, what="the later product in the index")
    second = search(shop, q=word, limit=2, cursor=first["nextCursor"]).json()
    paged = [i["productId"] for i in first["items"] + second["items"]]
    assert len(paged) == 3 and set(paged) == made and second["nextCursor"] is None, paged
    other = search(shop, q="something else", cursor=first["nextCursor"])
    assert other.status_code == 422 and other.json()["type"].endswith("invalid-cursor")
    forged = search(shop, q=word, cursor="bm90LWEtY3Vyc29y")
    assert forged.status_code == 422 and forged.headers["content-type"] == "application/problem+json"


def test_a_cursor_whose_pages_were_closed_is_a_422_cursor_expired(stack: Stack, shop: Storefront) -> None:
    word = f"pitx{uuid.uuid4().hex[:6]}"
    made = {a_product(shop, f"Mug {word} {n}")["id"] for n in range(3)}
    eventually(lambda: set(ids(shop, q=word)) == made, timeout=60, what="3 products in the index")
    cursor = search(shop, q=word, limit=2).json()["nextCursor"]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    pit = json.loads(raw[16:])["pit"]  # after the 16 bytes of HMAC: the page's view of the index
    with httpx.Client(base_url=stack.settings.opensearch.url, timeout=30) as client:
        assert client.request("DELETE", "/_search/point_in_time", json={"pit_id": [pit]}).status_code == 200
    expired = search(shop, q=word, limit=2, cursor=cursor)
    assert expired.status_code == 422 and expired.headers["content-type"] == "application/problem+json"
    assert expired.json()["type"].endswith("cursor-expired"), expired.text


def test_bad_parameters_are_a_422_problem(shop: Storefront) -> None:
    for params in (
        {"minPrice": -1},
        {"limit": 0},
        {"inStock": "maybe"},
        {"minPrice": 10, "maxPrice": 5},
        {"category": "Not A Slug"},
    ):
        r = search(shop, **params)
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"


def test_with_opensearch_down_the_search_is_a_503_naming_the_store(shop: Storefront, stack: Stack) -> None:
    assert search(shop, q="kettle").status_code == 200
    stack.down(["opensearch"])
    try:
        down = search(shop, q="kettle")
        assert down.status_code == 503, down.text
        assert down.headers["content-type"] == "application/problem+json"
        body = down.json()
        assert body["store"] == "opensearch" and "OpenSearch" in body["detail"]
        assert "Traceback" not in down.text and "ConnectError" not in down.text
    finally:
        stack.up(["opensearch"])
    eventually(lambda: search(shop, q="kettle").status_code == 200, timeout=60, what="the search back")
