"""GraphQL end to end: products with inventory from the snapshot projection and the current flash
price; a product update shows in the next read because its event dropped the caches; errors carry
codes; abusive queries are refused before they run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from tests.integration.api_client import Storefront, cached_product
from tests.support import eventually

PRODUCT = """query($id: ID!) { product(id: $id) {
  id sku name category price { amount currency } currentPrice { amount currency }
  flashSale { saleId price { amount } }
  inventory { onHand reserved available }
} }"""


def gql(shop: Storefront, query: str, **variables: Any) -> dict[str, Any]:
    r = shop.http.post("/graphql", json={"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_product_with_its_inventory_and_current_price(shop: Storefront, cache: redis.Redis) -> None:
    p = cached_product(shop, cache, stock=8, amount="40.00")
    shop.order("alice", [(p["id"], 3)])
    eventually(lambda: cache.hget(f"inventory:{p['id']}", "reserved") == "3", what="the snapshot")
    ends = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    sale = {"productId": p["id"], "salePrice": {"amount": "30.00", "currency": "USD"}, "endsAt": ends}
    assert shop.http.post("/api/v1/flash-sales", headers=shop.auth("admin"), json=sale).status_code == 201
    eventually(lambda: cache.hget(f"flash_price:{p['id']}", "sales") not in (None, "[]"), what="the price map")
    product = gql(shop, PRODUCT, id=p["id"])["data"]["product"]
    assert product["name"] == "Test mug" and product["price"] == {"amount": "40.00", "currency": "USD"}
    assert product["category"] == "general"
    assert product["currentPrice"] == {"amount": "30.00", "currency": "USD"}
    assert product["flashSale"]["price"]["amount"] == "30.00"
    assert product["inventory"] == {"onHand": 8, "reserved": 3, "available": 5}
    assert cache.exists(f"gql:product:{p['id']}") and 0 < cache.pttl(f"gql:product:{p['id']}") <= 30_000


def test_a_product_update_shows_in_the_next_read_once_its_event_drops_the_caches(
    shop: Storefront, cache: redis.Redis
) -> None:
    p = cached_product(shop, cache, stock=1)
    assert gql(shop, PRODUCT, id=p["id"])["data"]["product"]["name"] == "Test mug"  # cached now
    assert shop.http.get(f"/api/v1/products/{p['id']}").json()["name"] == "Test mug"
    assert cache.exists(f"product:{p['id']}") and cache.exists(f"gql:product:{p['id']}")
    new_name = f"Mug {uuid.uuid4().hex[:6]}"
    r = shop.http.patch(
        f"/api/v1/products/{p['id']}", headers=shop.auth("admin"), json={"name": new_name, "category": "kitchen"}
    )
    assert r.status_code == 200
    eventually(  # well within the aggregate's 30 s TTL: the event dropped it, not time
        lambda: gql(shop, PRODUCT, id=p["id"])["data"]["product"]["name"] == new_name,
        timeout=10,
        what="the new name through GraphQL",
    )
    assert gql(shop, PRODUCT, id=p["id"])["data"]["product"]["category"] == "kitchen"
    rest = shop.http.get(f"/api/v1/products/{p['id']}").json()
    assert rest["name"] == new_name and rest["category"] == "kitchen"
    assert int(cache.get(f"product:{p['id']}:floor") or 0) == r.json()["version"]


def test_products_page_and_inventory_query(shop: Storefront) -> None:
    a, b = shop.product(stock=2, category="electronics"), shop.product(stock=3)
    query = """query($q: String) { products(filter: {q: $q}, first: 50) {
      items { id category inventory { available } currentPrice { amount } } nextCursor } }"""
    sku = a["sku"]
    page = gql(shop, query, q=sku)["data"]["products"]
    assert [(i["id"], i["category"]) for i in page["items"]] == [(a["id"], "electronics")]
    assert page["nextCursor"] is None
    assert page["items"][0]["inventory"]["available"] == 2
    stock = gql(shop, "query($id: ID!) { productInventory(id: $id) { available version } }", id=b["id"])
    assert stock["data"]["productInventory"]["available"] == 3


def test_errors_carry_codes_and_abusive_queries_are_refused(shop: Storefront) -> None:
    missing = gql(shop, PRODUCT, id="P-nope")
    assert missing["data"] == {"product": None}
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    too_many = gql(shop, "{ products(first: 500) { nextCursor } }")
    assert too_many["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    bad_cursor = gql(shop, '{ products(after: "not-a-cursor") { nextCursor } }')
    assert bad_cursor["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    huge = "{ products { items { " + "id " * 2_500 + "} } }"  # a cheap way to make the server parse a lot
    assert "token" in gql(shop, huge)["errors"][0]["message"].lower()
    aliases = "{ " + " ".join(f'p{i}: product(id: "P-{i}") {{ id }}' for i in range(40)) + " }"
    assert "aliases" in gql(shop, aliases)["errors"][0]["message"]
    typo = gql(shop, "{ product(id: 1) { price_minor } }")
    assert "price_minor" in typo["errors"][0]["message"] and typo.get("data") is None
