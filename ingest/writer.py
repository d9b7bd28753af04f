"""The writers' path for a device's delta: SKU → product id through the catalog (`GET
/api/v1/products?sku=`), then `POST /api/v1/products/{id}/stock/adjustments` with the message's
idempotency key. The API commits the adjustment and its stock.adjusted outbox event in one
transaction (Debezium takes it to Kafka); this module never touches Postgres."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
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
    """The ingest's bearer token: the configured one, or the one in its token file, re-read when
    the file changes (its issuer rotates it) and after the API refused the one held."""

    def __init__(self, fixed: str, file: Path | None = None) -> None:
        if not fixed and file is None:
            raise ValueError(
                "the ingest needs a credential: SHOPSTREAM_IOT_INGEST__API_TOKEN or "
                "SHOPSTREAM_IOT_INGEST__API_TOKEN_FILE (a bearer token of role STOCK_KEEPER)"
            )
        self._fixed, self._file = fixed, file
        self._token, self._seen = fixed, -1.0

    def header(self) -> dict[str, str]:
        if self._file is not None:
            try:
                changed = self._file.stat().st_mtime
                if changed != self._seen:
                    self._token, self._seen = self._file.read_text().strip(), changed
            except OSError as exc:
                raise ApiUnavailable(f"the token file {self._file} cannot be read: {exc}") from exc
        return {"Authorization": f"Bearer {self._token}"}

    def expire(self) -> None:
        self._seen = -1.0  # read the file again next time


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
            log.error("the API refuses the ingest's token (HTTP %s): it needs role STOCK_KEEPER", answer.status_code)
        if answer.status_code in (401, 403, 408, 409, 429) or answer.status_code >= 500:
            raise ApiUnavailable(f"{method} {path}: HTTP {answer.status_code}")
        return answer


def _problem(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {"detail": answer.text[:200]}
    return body if isinstance(body, dict) else {}
