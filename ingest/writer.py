"""The writers' path for a device's delta: SKU → product id through the catalog (`GET
/api/v1/products?sku=`), then `POST /api/v1/products/{id}/stock/adjustments` with the message's
idempotency key. The API commits the adjustment and its stock.adjusted outbox event in one
transaction (Debezium takes it to Kafka); this module never touches Postgres."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from ingest.payload import StockDelta

log = logging.getLogger(__name__)

Outcome = Literal["applied", "replayed", "unknown-sku", "rejected"]


@dataclass(frozen=True)
class Written:
    outcome: Outcome
    detail: str = ""


class ApiUnavailable(Exception):
    """Not the message's fault (the API is down, overloaded, or the key is busy): retry it later."""


class TokenSource:
    """A bearer token: the configured one, or a dev service token renewed well before it expires."""

    def __init__(self, fixed: str, issue: Callable[[int], str] | None, ttl_s: int = 3600) -> None:
        self._fixed, self._issue, self._ttl = fixed, issue, ttl_s
        self._token, self._renew_at = "", 0.0

    def header(self) -> dict[str, str]:
        if self._fixed:
            return {"Authorization": f"Bearer {self._fixed}"}
        if self._issue is None:
            raise RuntimeError("no API token configured and no secret to issue one")
        if time.monotonic() >= self._renew_at:
            self._token, self._renew_at = self._issue(self._ttl), time.monotonic() + self._ttl / 2
        return {"Authorization": f"Bearer {self._token}"}

    def expire(self) -> None:
        self._renew_at = 0.0


class StockWriter:
    def __init__(self, http: httpx.AsyncClient, tokens: TokenSource) -> None:
        self.http = http
        self.tokens = tokens
        # SKU -> product id: a SKU never moves to another product (the catalog has no SKU change)
        self._ids: dict[str, str] = {}

    async def product_id(self, sku: str) -> str | None:
        if sku in self._ids:
            return self._ids[sku]
        answer = await self._call("GET", "/api/v1/products", params={"sku": sku, "limit": 1})
        if answer.status_code != 200:
            raise ApiUnavailable(f"product lookup: HTTP {answer.status_code}")
        items = answer.json().get("items", [])
        if not items:
            return None
        self._ids[sku] = str(items[0]["id"])
        return self._ids[sku]

    async def adjust(self, item: StockDelta) -> Written:
        """Apply one delta (once per idempotency key), or say why it cannot be."""
        product_id = await self.product_id(item.sku)
        if product_id is None:
            return Written("unknown-sku", f"no product with SKU {item.sku}")
        headers = {"Idempotency-Key": key} if (key := item.idempotency_key) else {}
        answer = await self._call(
            "POST",
            f"/api/v1/products/{product_id}/stock/adjustments",
            json={"delta": item.delta, "reason": item.reason},
            headers=headers,
        )
        if answer.status_code == 200:
            return Written("replayed" if answer.headers.get("Idempotent-Replayed") == "true" else "applied")
        problem = _problem(answer)
        if answer.status_code == 404:
            self._ids.pop(item.sku, None)
            return Written("unknown-sku", f"product {product_id} of SKU {item.sku} not found")
        if answer.status_code in (400, 422):
            return Written("rejected", f"{problem.get('title', '')}: {problem.get('detail', '')}"[:500])
        raise ApiUnavailable(f"adjustment: HTTP {answer.status_code} {problem.get('detail', '')}")

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = await self.http.request(
                method, path, **{**kwargs, "headers": {**kwargs.get("headers", {}), **self.tokens.header()}}
            )
        except httpx.TransportError as exc:
            raise ApiUnavailable(f"{method} {path}: {type(exc).__name__} {exc}") from exc
        if answer.status_code == 401:
            self.tokens.expire()  # an expired or rotated token: a new one next time
        if answer.status_code in (401, 403):
            log.error("the API refuses the ingest's token (HTTP %s): it needs the ADMIN role", answer.status_code)
        if answer.status_code in (401, 403, 408, 409, 429) or answer.status_code >= 500:
            raise ApiUnavailable(f"{method} {path}: HTTP {answer.status_code}")
        return answer


def _problem(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {"detail": answer.text[:200]}
    return body if isinstance(body, dict) else {}
