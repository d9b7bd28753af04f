"""The storefront REST API on the real stack (Postgres, gRPC inventory, OPA, registry)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import redis

from dev.stack.stack import Stack
from tests.integration.api_client import Storefront, cached_product

PROBLEM = "application/problem+json"


def test_products_crud_price_versions_and_cursor_pages(shop: Storefront) -> None:
    created = [shop.product(stock=3) for _ in range(3)]
    first = created[0]
    assert first["price"] == {"amount": "25.00", "currency": "USD", "amountMinor": 2500}
    assert shop.http.get(f"/api/v1/products/{first['id']}").json()["sku"] == first["sku"]
    r = shop.http.patch(f"/api/v1/products/{first['id']}", headers=shop.auth("admin"), json={"name": "Big mug"})
    assert r.status_code == 200 and r.json()["name"] == "Big mug" and r.json()["version"] == 2
    r = shop.http.put(
        f"/api/v1/products/{first['id']}/price", headers=shop.auth("admin"), json={"amount": "27.50", "currency": "USD"}
    )
    assert r.json()["priceVersion"] == 2 and r.json()["price"]["amountMinor"] == 2750
    versions = shop.http.get(f"/api/v1/products/{first['id']}/prices").json()["versions"]
    assert [v["amountMinor"] for v in versions] == [2500, 2750]
    assert versions[0]["validTo"] is not None and versions[1]["validTo"] is None  # SCD2
    # pages of 1 through exactly the products this test made
    seen, cursor = [], None
    sku_part = "SKU-"
    while True:
        params: dict[str, str | int] = {"limit": 1, "q": sku_part}
        if cursor:
            params["cursor"] = cursor
        page = shop.http.get("/api/v1/products", params=params).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert {p["id"] for p in created} <= set(seen) and len(seen) == len(set(seen))
    assert shop.http.get("/api/v1/products", params={"cursor": "!!!"}).status_code == 422


def test_duplicate_sku_and_bad_input_are_problems_not_500s(shop: Storefront) -> None:
    p = shop.product()
    r = shop.http.post(
        "/api/v1/products",
        headers=shop.auth("admin"),
        json={"sku": p["sku"], "name": "x", "price": {"amount": "1.00", "currency": "USD"}},
    )
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
    for body in (
        {"sku": "a b", "name": "", "price": {"amount": 1.5, "currency": "usd"}},
        {"sku": "ok", "name": "n", "price": {"amount": "1.005", "currency": "USD"}},
        [],
        "x",
    ):
        r = shop.http.post("/api/v1/products", headers=shop.auth("admin"), json=body)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
        assert r.json()["invalid_params"]
    assert shop.http.get("/api/v1/products/nope").json()["status"] == 404
    assert shop.http.get("/api/v1/nowhere").headers["content-type"] == PROBLEM


def test_a_product_has_a_category_general_unless_set(shop: Storefront) -> None:
    plain = shop.product()
    assert plain["category"] == "general"
    assert shop.http.get(f"/api/v1/products/{plain['id']}").json()["category"] == "general"
    p = shop.product(category="home-decor_2")
    assert p["category"] == "home-decor_2"
    assert shop.http.get(f"/api/v1/products/{p['id']}").json()["category"] == "home-decor_2"
    assert shop.product(category="a" * 40)["category"] == "a" * 40  # the longest slug
    r = shop.http.patch(f"/api/v1/products/{p['id']}", headers=shop.auth("admin"), json={"category": "toys"})
    assert r.status_code == 200 and r.json()["category"] == "toys" and r.json()["version"] == p["version"] + 1
    listed = shop.http.get("/api/v1/products", params={"q": p["sku"]}).json()["items"]
    assert [(i["id"], i["category"]) for i in listed] == [(p["id"], "toys")]


def test_a_category_that_is_not_a_lowercase_slug_is_a_422_problem(shop: Storefront) -> None:
    p = shop.product()
    body = {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": "x", "price": {"amount": "1.00", "currency": "USD"}}
    for category in ("Apparel", "9lives", "-x", "home decor", "a" * 41, "", "caf\u00e9", None, 5):
        r = shop.http.post("/api/v1/products", headers=shop.auth("admin"), json={**body, "category": category})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (category, r.text)
        assert [param["name"] for param in r.json()["invalid_params"]] == ["category"], r.text
        r = shop.http.patch(f"/api/v1/products/{p['id']}", headers=shop.auth("admin"), json={"category": category})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (category, r.text)
        assert r.json()["invalid_params"], r.text  # a null is the whole patch's error ("body")
    assert shop.http.get(f"/api/v1/products/{p['id']}").json()["category"] == "general"
    assert shop.http.get("/api/v1/products", params={"q": body["sku"]}).json()["items"] == []


def test_a_cached_product_from_before_categories_is_reloaded_not_served(shop: Storefront, cache: redis.Redis) -> None:
    p = cached_product(shop, cache, category="grocery")
    assert shop.http.get(f"/api/v1/products/{p['id']}").json()["category"] == "grocery"  # cached now
    old = {k: v for k, v in json.loads(cache.get(f"product:{p['id']}") or "{}").items() if k != "category"}
    cache.set(f"product:{p['id']}", json.dumps(old), px=60_000)  # as cached before migration 0004
    assert shop.http.get(f"/api/v1/products/{p['id']}").json()["category"] == "grocery"
    assert json.loads(cache.get(f"product:{p['id']}") or "{}")["category"] == "grocery"


def test_mutations_need_a_valid_jwt(shop: Storefront) -> None:
    body = {"sku": "x", "name": "x", "price": {"amount": "1.00", "currency": "USD"}}
    assert shop.http.post("/api/v1/products", json=body).status_code == 401
    r = shop.http.post("/api/v1/products", json=body, headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    assert shop.http.post("/api/v1/products", json=body, headers=shop.auth("alice")).status_code == 403


def test_order_lifecycle_and_illegal_transitions(shop: Storefront) -> None:
    p = shop.product(stock=5)
    r = shop.order("alice", [(p["id"], 2)], correlation="corr-lifecycle")
    assert r.status_code == 201 and r.headers["Location"].endswith(r.json()["id"])
    order = r.json()
    assert order["status"] == "PENDING" and order["total"]["amountMinor"] == 5000
    assert order["correlationId"] == "corr-lifecycle" and r.headers["Correlation-Id"] == "corr-lifecycle"
    assert shop.stock(p["id"])["available"] == 3
    oid = order["id"]
    assert shop.http.post(f"/api/v1/orders/{oid}/fulfill", headers=shop.auth("admin")).status_code == 409
    paid = shop.http.post(f"/api/v1/orders/{oid}/pay", headers=shop.auth("alice"))
    assert paid.status_code == 200 and paid.json()["status"] == "PAID"
    again = shop.http.post(f"/api/v1/orders/{oid}/pay", headers=shop.auth("alice"))
    assert again.status_code == 409 and again.json()["type"].endswith("illegal-transition")
    done = shop.http.post(f"/api/v1/orders/{oid}/fulfill", headers=shop.auth("admin"), json={"trackingNumber": "T1"})
    assert done.json()["status"] == "FULFILLED"
    assert [h["to"] for h in done.json()["history"]] == ["PENDING", "PAID", "FULFILLED"]
    assert shop.stock(p["id"]) | {"version": 0} == {
        "productId": p["id"],
        "onHand": 3,
        "reserved": 0,
        "available": 3,
        "version": 0,
    }


def test_payment_declined_keeps_the_order_pending(shop: Storefront) -> None:
    p = shop.product(stock=5, amount="10.13")  # the gateway declines amounts ending in 13 cents
    order = shop.order("alice", [(p["id"], 1)]).json()
    r = shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice"))
    assert r.status_code == 402 and r.json()["detail"] == "card declined"
    assert shop.http.get(f"/api/v1/orders/{order['id']}", headers=shop.auth("alice")).json()["status"] == "PENDING"


def test_cancel_releases_the_stock(shop: Storefront) -> None:
    p = shop.product(stock=4)
    order = shop.order("alice", [(p["id"], 3)]).json()
    assert shop.stock(p["id"])["available"] == 1
    r = shop.http.post(
        f"/api/v1/orders/{order['id']}/cancel", headers=shop.auth("alice"), json={"reason": "changed mind"}
    )
    assert r.status_code == 200 and r.json()["status"] == "CANCELED"
    assert shop.stock(p["id"]) == {**shop.stock(p["id"]), "available": 4, "reserved": 0}


@pytest.mark.parametrize("status", ["PENDING", "PAID", "CANCELED"])
@pytest.mark.parametrize(("who", "owner"), [("alice", True), ("bob", False), ("admin", False)])
def test_authorization_matrix_for_cancel_and_read(shop: Storefront, status: str, who: str, owner: bool) -> None:
    p = shop.product(stock=2)
    order = shop.order("alice", [(p["id"], 1)]).json()
    if status == "PAID":
        shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice"))
    elif status == "CANCELED":
        shop.http.post(f"/api/v1/orders/{order['id']}/cancel", headers=shop.auth("alice"))
    read = shop.http.get(f"/api/v1/orders/{order['id']}", headers=shop.auth(who))
    assert read.status_code == (200 if owner or who == "admin" else 403)
    cancel = shop.http.post(f"/api/v1/orders/{order['id']}/cancel", headers=shop.auth(who))
    allowed = status == "PENDING" and (owner or who == "admin")
    assert cancel.status_code == (200 if allowed else 403), cancel.text
    if not allowed:
        assert cancel.headers["content-type"] == PROBLEM


def test_idempotent_replay_and_key_reuse(shop: Storefront) -> None:
    p = shop.product(stock=10)
    key = uuid.uuid4().hex
    first = shop.order("alice", [(p["id"], 1)], key=key)
    replay = shop.order("alice", [(p["id"], 1)], key=key)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert shop.stock(p["id"])["reserved"] == 1  # one order only
    reused = shop.order("alice", [(p["id"], 2)], key=key)
    assert reused.status_code == 422 and reused.json()["type"].endswith("idempotency-key-reused")
    other_user = shop.order("bob", [(p["id"], 1)], key=key)  # keys are per user
    assert other_user.status_code == 201 and other_user.json()["id"] != first.json()["id"]
    missing = shop.http.post(
        "/api/v1/orders", headers=shop.auth("alice"), json={"items": [{"productId": p["id"], "qty": 1}]}
    )
    assert missing.status_code == 400 and missing.headers["content-type"] == PROBLEM


def test_concurrent_duplicates_create_one_order(stack: Stack, shop: Storefront) -> None:
    p = shop.product(stock=10)
    key = uuid.uuid4().hex

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.settings.api.url, timeout=30) as client:
            headers = shop.auth("alice", **{"Idempotency-Key": key})
            body = {"items": [{"productId": p["id"], "qty": 1}]}
            return list(
                await asyncio.gather(*[client.post("/api/v1/orders", headers=headers, json=body) for _ in range(10)])
            )

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert shop.stock(p["id"])["reserved"] == 1


def test_fifty_concurrent_orders_for_the_last_ten_units(stack: Stack, shop: Storefront) -> None:
    p = shop.product(stock=10)

    async def rush() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.settings.api.url, timeout=60) as client:
            return list(
                await asyncio.gather(
                    *[
                        client.post(
                            "/api/v1/orders",
                            json={"items": [{"productId": p["id"], "qty": 1}]},
                            headers=shop.auth("alice" if i % 2 else "bob", **{"Idempotency-Key": uuid.uuid4().hex}),
                        )
                        for i in range(50)
                    ]
                )
            )

    responses = asyncio.run(rush())
    codes = sorted(r.status_code for r in responses)
    odd = [r.text for r in responses if r.status_code not in (201, 409)]
    assert codes.count(201) == 10 and codes.count(409) == 40, odd
    stock = shop.stock(p["id"])
    assert stock["reserved"] == 10 and stock["available"] == 0 and stock["onHand"] == 10


def test_carts_checkout_into_an_order(shop: Storefront) -> None:
    a, b = shop.product(stock=5), shop.product(stock=5, amount="3.10")
    cart = shop.http.post("/api/v1/carts", headers=shop.auth("alice")).json()
    url = f"/api/v1/carts/{cart['id']}"
    assert shop.http.put(f"{url}/items/{a['id']}", headers=shop.auth("alice"), json={"qty": 2}).status_code == 200
    shop.http.put(f"{url}/items/{b['id']}", headers=shop.auth("alice"), json={"qty": 1})
    assert shop.http.get(url, headers=shop.auth("bob")).status_code == 403
    shop.http.delete(f"{url}/items/{b['id']}", headers=shop.auth("alice"))
    assert [i["productId"] for i in shop.http.get(url, headers=shop.auth("alice")).json()["items"]] == [a["id"]]
    key = {"Idempotency-Key": uuid.uuid4().hex}
    order = shop.http.post(f"{url}/checkout", headers=shop.auth("alice", **key))
    assert order.status_code == 201 and order.json()["total"]["amountMinor"] == 5000
    assert shop.http.get(url, headers=shop.auth("alice")).json() | {"updatedAt": ""} == {
        **shop.http.get(url, headers=shop.auth("alice")).json(),
        "status": "CHECKED_OUT",
        "orderId": order.json()["id"],
        "updatedAt": "",
    }
    again = shop.http.post(f"{url}/checkout", headers=shop.auth("alice", **{"Idempotency-Key": uuid.uuid4().hex}))
    assert again.status_code == 409


def test_metrics_count_orders_latency_and_reservation_failures(shop: Storefront) -> None:
    def sample(text: str, name: str) -> float:
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    before = shop.http.get("/metrics").text
    p = shop.product(stock=1)
    assert shop.order("alice", [(p["id"], 1)]).status_code == 201
    assert shop.order("alice", [(p["id"], 1)]).status_code == 409
    after = shop.http.get("/metrics").text
    assert sample(after, "orders_created_total") == sample(before, "orders_created_total") + 1
    assert sample(after, "order_creation_latency_ms_count") == sample(before, "order_creation_latency_ms_count") + 1
    failures = 'inventory_reservation_failures_total{reason="failed_precondition"}'
    assert sample(after, failures) == sample(before, failures) + 1


def test_nulls_nul_bytes_and_huge_orders_are_422_not_500(shop: Storefront) -> None:
    p = shop.product(stock=5)
    for body in ({"name": None}, {"active": None}, {"name": "a\u0000b"}):
        r = shop.http.patch(f"/api/v1/products/{p['id']}", headers=shop.auth("admin"), json=body)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (body, r.text)
    assert shop.http.get("/api/v1/products/%00").status_code in (404, 422)
    assert shop.http.get("/api/v1/products", params={"q": "\u0000"}).status_code == 422
    big = shop.product(stock=0, amount="999999999999.99")
    r = shop.order("alice", [(big["id"], 1000)])
    assert r.status_code == 422, r.text


def test_two_checkouts_of_one_cart_make_one_order(stack: Stack, shop: Storefront) -> None:
    p = shop.product(stock=10)
    cart = shop.http.post("/api/v1/carts", headers=shop.auth("alice")).json()["id"]
    shop.http.put(f"/api/v1/carts/{cart}/items/{p['id']}", headers=shop.auth("alice"), json={"qty": 1})

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.settings.api.url, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *[
                        client.post(
                            f"/api/v1/carts/{cart}/checkout",
                            headers=shop.auth("alice", **{"Idempotency-Key": uuid.uuid4().hex}),
                        )
                        for _ in range(5)
                    ]
                )
            )

    codes = sorted(r.status_code for r in asyncio.run(both()))
    assert codes.count(201) == 1 and set(codes) <= {201, 409}, codes
    assert shop.stock(p["id"])["reserved"] == 1  # the losers' reservations were released


@pytest.mark.parametrize("who", ["alice", "bob", "admin"])
def test_authorization_matrix_for_pay_fulfil_carts_and_catalog(shop: Storefront, who: str) -> None:
    p = shop.product(stock=5)
    owner, admin = who == "alice", who == "admin"
    order = shop.order("alice", [(p["id"], 1)]).json()
    pay = shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth(who))
    assert pay.status_code == (200 if owner or admin else 403)
    if pay.status_code != 200:
        shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice"))
    fulfil = shop.http.post(f"/api/v1/orders/{order['id']}/fulfill", headers=shop.auth(who))
    assert fulfil.status_code == (200 if admin else 403)
    cart = shop.http.post("/api/v1/carts", headers=shop.auth("alice")).json()["id"]
    put = shop.http.put(f"/api/v1/carts/{cart}/items/{p['id']}", headers=shop.auth(who), json={"qty": 1})
    assert put.status_code == (200 if owner or admin else 403)
    checkout = shop.http.post(
        f"/api/v1/carts/{cart}/checkout", headers=shop.auth(who, **{"Idempotency-Key": uuid.uuid4().hex})
    )
    assert checkout.status_code in ((201, 422) if owner or admin else (403,))
    for method, path, body in (
        ("PATCH", f"/api/v1/products/{p['id']}", {"name": "renamed"}),
        ("PUT", f"/api/v1/products/{p['id']}/price", {"amount": "30.00", "currency": "USD"}),
        ("POST", f"/api/v1/products/{p['id']}/stock/adjustments", {"delta": 5}),
        ("DELETE", f"/api/v1/products/{p['id']}", None),
    ):
        r = shop.http.request(method, path, headers=shop.auth(who), json=body)
        assert r.status_code == (200 if admin else 403), (method, path, r.text)
    if admin:
        assert shop.http.get(f"/api/v1/products/{p['id']}").json()["active"] is False  # withdrawn, not gone
