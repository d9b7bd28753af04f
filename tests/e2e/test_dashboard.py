"""The live dashboard in a real headless Chromium: after real orders and a payment, the page (fed
by /sse/dashboard) shows the revenue of this minute, the top products and the inventory alerts
with the numbers the projections hold — checked in the page and in a screenshot."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import pytest
import redis
from PIL import Image

from dev.stack.stack import Stack
from tests.e2e.browser import Browser
from tests.integration.api_client import Storefront
from tests.support import eventually


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


SHOWN = """JSON.stringify({
  status: document.getElementById('status').textContent,
  revenue: [...document.querySelectorAll('#revenue tr[data-currency]')].map(r => ({
      currency: r.dataset.currency, minute: Number(r.dataset.minute),
      amountMinor: Number(r.querySelector('[data-amount-minor]').dataset.amountMinor)})),
  top: [...document.querySelectorAll('#top tr[data-product-id]')].map(r => [r.dataset.productId,
      Number(r.querySelector('[data-units]').dataset.units)]),
  low: [...document.querySelectorAll('#low tr[data-product-id]')].map(r => [r.dataset.productId,
      Number(r.querySelector('[data-available]').dataset.available)]),
})"""


def test_the_dashboard_shows_the_projections_numbers(stack: Stack, shop: Storefront, browser: Browser) -> None:
    cache = redis.Redis(host=stack.settings.redis.host, port=stack.settings.redis.port, decode_responses=True)
    product = shop.product(stock=10, amount="12.34", currency="EUR")
    order = shop.order("alice", [(product["id"], 7)]).json()  # 3 left: an inventory alert
    assert shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice")).status_code == 200
    eventually(lambda: cache.zscore("inventory:low", product["id"]) == 3, what="the inventory alert")
    now = int(time.time() * 1000)
    recent = [f"revenue:1m:EUR:{now - now % 60_000 - i * 60_000}" for i in range(2)]  # this minute or the last
    minute = eventually(
        lambda: next((k for k in recent if int(cache.hget(k, "amountMinor") or 0) >= 8638), None),
        what="the EUR revenue window",
    )

    browser.open(f"{stack.settings.api.url}/dashboard?token={shop.tokens['admin']}")
    browser.wait_for("document.getElementById('status').textContent.startsWith('updated')")
    browser.wait_for("document.querySelectorAll('#low tr[data-product-id]').length > 0")
    shown = json.loads(browser.evaluate(SHOWN))
    top = [[m, int(s)] for m, s in cache.zrevrange("top_products:ordered", 0, 4, withscores=True)]
    low = [[m, int(s)] for m, s in cache.zrange("inventory:low", 0, 9, withscores=True)]
    assert shown["top"] == top, "the page's top products are the projection's"
    assert shown["low"] == low, "the page's alerts are the projection's (the 10 lowest)"
    start = int(minute.rsplit(":", 1)[1])
    eur = [r for r in shown["revenue"] if r["currency"] == "EUR" and r["minute"] == start]
    assert eur and eur[0]["amountMinor"] == int(cache.hget(minute, "amountMinor") or 0) >= 8638

    image = Image.open(io.BytesIO(browser.screenshot())).convert("RGB")
    assert image.width == 1280 and image.height > 600
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, "a rendered page, not a blank one"
    text_pixels = sum(n for n, (r, g, b) in colours if r > 150 and g > 150 and b > 150)
    assert text_pixels > 500, "light text drawn on the dark page"


def test_the_dashboard_feed_is_for_admins(stack: Stack, shop: Storefront) -> None:
    import httpx

    url = f"{stack.settings.api.url}/sse/dashboard"
    assert httpx.get(url, timeout=10).status_code == 422  # no token
    refused = httpx.get(url, params={"token": shop.tokens["alice"]}, timeout=10)
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
