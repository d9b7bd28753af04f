"""A storefront workload through the public API: browse, carts, orders, payments, cancellations
and fulfilment, with JWTs of many customers and a back office of its own narrow roles (from the
local stack's identity provider, `dev.stack.identity`), at an open-loop rate.
`shopstream simulate --rate 5 --duration 60` (duration 0: until stopped)."""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from dev.stack.identity import LocalIdentity

# the categories seeded products get, one each, drawn from the simulator's seeded generator
CATEGORIES = ("apparel", "electronics", "home", "grocery", "toys")


@dataclass
class Tally:
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    orders: int = 0

    def record(self, name: str, response: httpx.Response) -> None:
        self.calls[f"{name} {response.status_code}"] += 1
        if response.status_code >= 500:
            self.errors[f"{name} {response.status_code}"] += 1


class Storefront:
    def __init__(
        self, base_url: str, users: int, seed: int | None = None, identity: LocalIdentity | None = None
    ) -> None:
        identity = identity or LocalIdentity()
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)
        self.rng = random.Random(seed)
        # its own narrow roles: it seeds the catalog (MERCHANDISER) and ships paid orders (WAREHOUSE)
        self.back_office = {"Authorization": f"Bearer {identity.back_office()}"}
        self.customers = [
            (f"USER-sim-{i}", {"Authorization": f"Bearer {identity.customer(f'USER-sim-{i}')}"}) for i in range(users)
        ]
        self.products: list[str] = []
        self.pending: list[tuple[dict[str, str], str]] = []
        self.paid: list[str] = []
        self.tally = Tally()

    async def close(self) -> None:
        await self.http.aclose()

    async def seed_products(self, count: int) -> None:
        for i in range(count):
            price = f"{self.rng.randint(3, 120)}.{self.rng.choice(['00', '50', '99', '25'])}"
            r = await self.http.post(
                "/api/v1/products",
                headers=self.back_office,
                json={
                    "sku": f"SIM-{uuid.uuid4().hex[:10]}",
                    "name": f"Simulated product {i}",
                    "category": self.rng.choice(CATEGORIES),
                    "price": {"amount": price, "currency": "USD"},
                    "stock": 10_000,
                },
            )
            self.tally.record("seed", r)
            if r.status_code == 201:
                self.products.append(r.json()["id"])

    async def step(self) -> None:
        """One storefront action, chosen by the mix below."""
        action = self.rng.choices(
            [self.browse, self.cart_checkout, self.direct_order, self.pay, self.cancel, self.fulfill],
            weights=[40, 12, 20, 15, 5, 8],
        )[0]
        await action()

    async def browse(self) -> None:
        r = await self.http.get("/api/v1/products", params={"limit": 10})
        self.tally.record("browse", r)
        if self.products:
            r = await self.http.get(f"/api/v1/products/{self.rng.choice(self.products)}")
            self.tally.record("product", r)

    def _customer(self) -> tuple[str, dict[str, str]]:
        return self.rng.choice(self.customers)

    def _lines(self) -> list[dict[str, Any]]:
        picks = self.rng.sample(self.products, k=min(len(self.products), self.rng.randint(1, 3)))
        return [{"productId": p, "qty": self.rng.randint(1, 3)} for p in picks]

    async def direct_order(self) -> None:
        _, headers = self._customer()
        r = await self.http.post(
            "/api/v1/orders", json={"items": self._lines()}, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
        )
        self._placed("order", headers, r)

    async def cart_checkout(self) -> None:
        _, headers = self._customer()
        r = await self.http.post("/api/v1/carts", headers=headers)
        self.tally.record("cart", r)
        if r.status_code != 201:
            return
        cart = r.json()["id"]
        for line in self._lines():
            r = await self.http.put(
                f"/api/v1/carts/{cart}/items/{line['productId']}", json={"qty": line["qty"]}, headers=headers
            )
            self.tally.record("cart-item", r)
        r = await self.http.post(
            f"/api/v1/carts/{cart}/checkout", headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
        )
        self._placed("checkout", headers, r)

    def _placed(self, name: str, headers: dict[str, str], r: httpx.Response) -> None:
        self.tally.record(name, r)
        if r.status_code == 201:
            self.tally.orders += 1
            self.pending.append((headers, r.json()["id"]))

    async def pay(self) -> None:
        if self.pending:
            headers, order_id = self.pending.pop(self.rng.randrange(len(self.pending)))
            r = await self.http.post(f"/api/v1/orders/{order_id}/pay", headers=headers)
            self.tally.record("pay", r)
            if r.status_code == 200:
                self.paid.append(order_id)

    async def cancel(self) -> None:
        if self.pending:
            headers, order_id = self.pending.pop(self.rng.randrange(len(self.pending)))
            r = await self.http.post(f"/api/v1/orders/{order_id}/cancel", headers=headers, json={"reason": "simulated"})
            self.tally.record("cancel", r)

    async def fulfill(self) -> None:
        if self.paid:
            order_id = self.paid.pop(0)
            r = await self.http.post(f"/api/v1/orders/{order_id}/fulfill", headers=self.back_office)
            self.tally.record("fulfill", r)


async def run(
    base_url: str,
    rate: float,
    duration: float,
    users: int = 50,
    products: int = 20,
    seed: int | None = None,
    on_tick: Callable[[Tally, float], None] | None = None,
) -> Tally:
    """Actions at `rate` per second (open loop) for `duration` seconds (0: forever)."""
    shop = Storefront(base_url, users, seed)
    try:
        await shop.seed_products(products)
        started = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        while duration <= 0 or time.monotonic() - started < duration:
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(_safe(shop, shop.step))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            if on_tick and n % max(1, int(rate)) == 0:
                on_tick(shop.tally, time.monotonic() - started)
        await asyncio.gather(*tasks)
    finally:
        await shop.close()
    return shop.tally


async def _safe(shop: Storefront, action: Callable[[], Any]) -> None:
    try:
        await action()
    except httpx.HTTPError as exc:
        shop.tally.errors[f"transport {type(exc).__name__}{_request_of(exc)}"] += 1


def _request_of(exc: httpx.HTTPError) -> str:
    """` POST /api/v1/orders/{id}/pay`: which call failed, its ids folded (a tally's key)."""
    try:
        request = exc.request
    except RuntimeError:  # an error raised before a request was made
        return ""
    path = re.sub(r"/(ORD-|P-|USER-)?[0-9a-fA-F-]{8,}", "/{id}", request.url.path)
    return f" {request.method} {path}"
