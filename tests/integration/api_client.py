"""A small client of the storefront API for tests: tokens for a few users, products with stock."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import redis

from serving_api.auth.tokens import issue_token
from serving_api.settings import ApiSettings
from tests.support import eventually


class Storefront:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        settings = ApiSettings()
        self.tokens = {
            "admin": issue_token(settings, "USER-admin", ["ADMIN"]),
            "alice": issue_token(settings, "USER-alice", ["CUSTOMER"]),
            "bob": issue_token(settings, "USER-bob", ["CUSTOMER"]),
        }

    def close(self) -> None:
        self.http.close()

    def auth(self, who: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **extra}

    def product(
        self, stock: int = 10, amount: str = "25.00", currency: str = "USD", category: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sku": f"SKU-{uuid.uuid4().hex[:10]}",
            "name": "Test mug",
            "price": {"amount": amount, "currency": currency},
            "stock": stock,
        }
        if category is not None:
            body["category"] = category
        r = self.http.post("/api/v1/products", headers=self.auth("admin"), json=body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def order(
        self, who: str, lines: list[tuple[str, int]], key: str | None = None, correlation: str | None = None
    ) -> httpx.Response:
        headers = self.auth(who, **{"Idempotency-Key": key or uuid.uuid4().hex})
        if correlation:
            headers["Correlation-Id"] = correlation
        return self.http.post(
            "/api/v1/orders", headers=headers, json={"items": [{"productId": p, "qty": q} for p, q in lines]}
        )

    def stock(self, product_id: str) -> dict[str, Any]:
        return self.http.get(f"/api/v1/products/{product_id}/stock").json()  # type: ignore[no-any-return]


def cached_product(shop: Storefront, cache: redis.Redis, **fields: Any) -> dict[str, Any]:
    """A new product whose own product.updated event has reached serving_caches. That event drops
    the product's cache entries, so a copy cached before it arrives is dropped again, and a test
    that checks the cache would race it."""
    p = shop.product(**fields)
    eventually(lambda: int(cache.get(f"product:{p['id']}:floor") or 0) >= p["version"], what="the product's own event")
    return p
