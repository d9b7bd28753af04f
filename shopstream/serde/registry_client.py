"""The few registry calls the serde needs, over the Confluent REST API, with caches."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from shopstream.serde.errors import SchemaNotRegistered

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(Exception):
    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(f"HTTP {status} ({error_code}): {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


class RegistryClient:
    def __init__(self, url: str, timeout: float = 5.0, miss_ttl_seconds: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
        )
        self._by_id: dict[int, str] = {}
        self._misses: dict[int, float] = {}  # unknown id -> when we last asked
        self._miss_ttl = miss_ttl_seconds

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema(self, schema_id: int) -> str:
        """The schema string of an id: fetched once, then cached (unknown ids for a while too)."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        missed = self._misses.get(schema_id)
        if missed is not None and time.monotonic() - missed < self._miss_ttl:
            raise SchemaNotRegistered(f"schema id {schema_id} is not registered")
        try:
            body = self._call("GET", f"/schemas/ids/{schema_id}")
        except RegistryError as exc:
            if exc.status == 404:
                self._misses[schema_id] = time.monotonic()
                raise SchemaNotRegistered(f"schema id {schema_id} is not registered") from exc
            raise
        schema = str(body["schema"])
        self._by_id[schema_id] = schema
        return schema

    def register(self, subject: str, schema: str) -> int:
        body = self._call("POST", f"/subjects/{subject}/versions", json={"schema": schema})
        schema_id = int(body["id"])
        return schema_id

    def lookup(self, subject: str, schema: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/subjects/{subject}", json={"schema": schema}))

    def latest(self, subject: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/subjects/{subject}/versions/latest"))

    def version(self, subject: str, version: int | str) -> dict[str, Any]:
        return dict(self._call("GET", f"/subjects/{subject}/versions/{version}"))

    def versions_of_id(self, schema_id: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/schemas/ids/{schema_id}/versions"))

    def compatibility(self, subject: str) -> str:
        return str(self._call("GET", f"/config/{subject}", params={"defaultToGlobal": "true"})["compatibilityLevel"])

    def check(self, subject: str, schema: str, version: str = "latest") -> list[str]:
        body = self._call(
            "POST",
            f"/compatibility/subjects/{subject}/versions/{version}",
            json={"schema": schema},
            params={"verbose": "true"},
        )
        return [] if body["is_compatible"] else list(body.get("messages", []))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryError(0, 0, f"schema registry at {self.url} unreachable: {exc}") from exc
        if response.is_error:
            try:
                body = response.json()
                raise RegistryError(response.status_code, int(body.get("error_code", 0)), str(body.get("message")))
            except (ValueError, json.JSONDecodeError):
                raise RegistryError(response.status_code, 0, response.text) from None
        return response.json()
