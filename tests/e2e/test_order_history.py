"""End to end: an order placed, paid and fulfilled through the REST API shows up in the
customer's order history (`GET /api/v1/customers/me/orders`), read from Cassandra's
orders_by_customer (the orders_by_customer dataflow), with every status it went through; a
customer cannot read another's history, an admin can; the cursor pages and cannot be forged."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from dev.stack.stack import Stack
from serving_api.auth.tokens import issue_token
from serving_api.settings import ApiSettings
from tests.integration.api_client import Storefront
from tests.support import eventually


def a_customer(shop: Storefront) -> tuple[str, dict[str, str]]:
    user = f"USER-hist-{uuid.uuid4().hex[:8]}"
    shop.tokens[user] = issue_token(ApiSettings(), user, ["CUSTOMER"])
    return user, shop.auth(user)


def history(
    shop: Storefront, headers: dict[str, str], path: str = "/api/v1/customers/me/orders", **params: Any
) -> httpx.Response:
    return shop.http.get(path, headers=headers, params=params)


def test_an_order_shows_up_in_the_history_with_every_status_it_went_through(shop: Storefront) -> None:
    user, headers = a_customer(shop)
    product = shop.product(stock=5, amount="12.50")
    placed = shop.order(user, [(product["id"], 2)])
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    paid = shop.http.post(f"/api/v1/orders/{order_id}/pay", headers=headers)
    assert paid.status_code == 200, paid.text
    shipped = shop.http.post(f"/api/v1/orders/{order_id}/fulfill", headers=shop.auth("admin"), json={})
    assert shipped.status_code == 200, shipped.text

    def fulfilled() -> dict[str, Any] | None:
        items = history(shop, headers).json()["items"]
        found = [o for o in items if o["orderId"] == order_id]
        return found[0] if found and found[0]["status"] == "FULFILLED" else None

    order = eventually(fulfilled, timeout=60, what=f"order {order_id} FULFILLED in the history")
    assert set(order["statusChangedAt"]) == {"PENDING", "PAID", "FULFILLED"}
    assert order["total"] == {"amountMinor": 2500, "currency": "USD"}
    assert order["itemCount"] == 2
    assert order["lines"] == [{"productId": product["id"], "qty": 2, "unitPriceMinor": 1250}]
    assert (
        order["statusChangedAt"]["PENDING"] <= order["statusChangedAt"]["PAID"] <= order["statusChangedAt"]["FULFILLED"]
    )
    assert len(order["traceId"]) == 32


def test_the_history_is_newest_first_and_pages_by_cursor(shop: Storefront) -> None:
    user, headers = a_customer(shop)
    product = shop.product(stock=10, amount="3.00")
    made = []
    for _ in range(3):
        r = shop.order(user, [(product["id"], 1)])
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    eventually(lambda: len(history(shop, headers).json()["items"]) == 3, timeout=60, what="3 orders in the history")
    first = history(shop, headers, limit=2).json()
    assert len(first["items"]) == 2 and first["nextCursor"]
    second = history(shop, headers, limit=2, cursor=first["nextCursor"]).json()
    assert len(second["items"]) == 1 and second["nextCursor"] is None
    listed = [o["orderId"] for o in first["items"] + second["items"]]
    assert listed == list(reversed(made))  # newest first

    # a cursor is bound to its customer and cannot be made up
    _, other = a_customer(shop)
    stolen = history(shop, other, cursor=first["nextCursor"])
    assert stolen.status_code == 422 and stolen.headers["content-type"] == "application/problem+json"
    forged = history(shop, headers, cursor="bm90LWEtY3Vyc29y")
    assert forged.status_code == 422 and forged.json()["type"].endswith("invalid-cursor")


def test_a_customer_cannot_read_another_customers_history_and_an_admin_can(shop: Storefront) -> None:
    owner, owner_headers = a_customer(shop)
    product = shop.product(stock=2)
    r = shop.order(owner, [(product["id"], 1)])
    assert r.status_code == 201, r.text
    eventually(lambda: history(shop, owner_headers).json()["items"], timeout=60, what="the owner's order")
    _, other = a_customer(shop)
    refused = history(shop, other, path=f"/api/v1/customers/{owner}/orders")
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    seen = history(shop, shop.auth("admin"), path=f"/api/v1/customers/{owner}/orders")
    assert seen.status_code == 200 and [o["orderId"] for o in seen.json()["items"]] == [r.json()["id"]]
    assert history(shop, {}).status_code == 401


def test_with_cassandra_down_the_history_is_a_503_naming_the_store_and_it_comes_back(
    shop: Storefront, stack: Stack
) -> None:
    user, headers = a_customer(shop)
    product = shop.product(stock=3)
    r = shop.order(user, [(product["id"], 1)])
    assert r.status_code == 201, r.text
    eventually(lambda: history(shop, headers).json()["items"], timeout=60, what="the order in the history")
    stack.down(["cassandra"])
    try:
        down = history(shop, headers)
        assert down.status_code == 503, down.text
        assert down.headers["content-type"] == "application/problem+json"
        body = down.json()
        assert body["store"] == "cassandra" and "Cassandra" in body["detail"]
        assert "Traceback" not in down.text and "NoHostAvailable" not in down.text
        # the write path does not depend on the serving store: orders are still taken
        during = shop.order(user, [(product["id"], 1)])
        assert during.status_code == 201, during.text
    finally:
        stack.up(["cassandra"])
    # the order placed while the store was down reaches it once it is back (the dataflow resumes)
    both = {r.json()["id"], during.json()["id"]}
    eventually(
        lambda: {o["orderId"] for o in history(shop, headers).json().get("items", [])} == both,
        timeout=180,
        what="both orders in the history after Cassandra came back",
    )
