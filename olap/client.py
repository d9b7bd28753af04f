"""A client of the OLAP service's HTTP API: what the CLI, the tests and the benchmarks use (the
store itself belongs to the service)."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx


class OlapError(RuntimeError):
    """The service refused or failed a request; the message is its problem detail."""


class OlapUnavailable(OlapError):
    """The service is not running (or not answering)."""


@dataclass
class OlapClient:
    url: str
    timeout: float = 600.0

    def _request(self, method: str, path: str, timeout: float | None = None, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(method, self.url + path, timeout=timeout or self.timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise OlapError(f"the OLAP service at {self.url} took longer than {timeout or self.timeout:.0f}s") from exc
        except httpx.TransportError as exc:
            raise OlapUnavailable(
                f"the OLAP service at {self.url} is not answering ({exc}); start it: `shopstream up olap`"
            ) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = f"{body.get('title')}: {body.get('detail')}"
            except ValueError:
                detail = response.text.strip()
            raise OlapError(detail)
        return response

    def status(self) -> dict[str, Any]:
        return dict(self._request("GET", "/status").json())

    def query_raw(self, sql: str, fmt: str = "JSONCompact") -> bytes:
        return self._request("POST", "/query", json={"sql": sql, "format": fmt}).content

    def query(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """(column names, rows) of a read-only query."""
        answer = json.loads(self.query_raw(sql, "JSONCompact"))
        return [m["name"] for m in answer["meta"]], answer["data"]

    def scalar(self, sql: str) -> Any:
        return self.query(sql)[1][0][0]

    def frame(self, sql: str) -> Any:
        """A pandas DataFrame of a read-only query (over Arrow: types intact)."""
        import pyarrow as pa  # type: ignore[import-untyped]

        table = pa.ipc.open_stream(io.BytesIO(self.query_raw(sql, "ArrowStream"))).read_all()
        return table.to_pandas()

    def dbt(self, *args: str, wait: float = 600.0) -> dict[str, Any]:
        """One dbt invocation in the service, e.g. dbt("build"), after the running one (if any);
        its outcome."""
        body = {"args": list(args), "wait_s": wait}
        return dict(self._request("POST", "/dbt", json=body, timeout=wait + self.timeout).json())

    def replay(self) -> None:
        """Have the loader land every topic again from its beginning."""
        self._request("POST", "/replay")

    # --- rebuilds of the landing beside the live one (`shopstream replay ... olap_landing`) ---------
    def rebuild_plan(self) -> dict[str, Any]:
        return dict(self._request("GET", "/rebuilds/plan").json())

    def rebuild_start(self, max_rate: int | None = None) -> dict[str, Any]:
        """A new generation landing, at most `max_rate` records/s (or the unfinished one
        continuing); its record."""
        return dict(self._request("POST", "/rebuilds", json={"maxRate": max_rate}).json())

    def rebuilds(self) -> dict[str, Any]:
        return dict(self._request("GET", "/rebuilds").json())

    def rebuild_verify(self, generation: int, wait: float = 60.0) -> dict[str, Any]:
        body = {"waitSeconds": wait}
        return dict(
            self._request("POST", f"/rebuilds/{generation}/verify", json=body, timeout=wait + self.timeout).json()
        )

    def rebuild_promote(self, generation: int, accept_differences: bool = False, wait: float = 60.0) -> dict[str, Any]:
        body = {"waitSeconds": wait, "acceptDifferences": accept_differences}
        path = f"/rebuilds/{generation}/promote"
        return dict(self._request("POST", path, json=body, timeout=wait + self.timeout).json())

    def rebuild_drop(self, generation: int) -> dict[str, Any]:
        return dict(self._request("DELETE", f"/rebuilds/{generation}").json())

    def settle(self, timeout: float = 120.0, since: float | None = None) -> dict[str, Any]:
        """Wait until the loader has landed everything written before `since` (a time.time(), default
        now): no backlog measured after it. Returns the loader's figures."""
        since = time.time() if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            loader = self.status()["loader"] or {}
            if loader.get("settled") and (loader.get("backlogAt") or 0) >= since:
                return dict(loader)
            if time.monotonic() > deadline:
                raise OlapError(f"the loader did not settle in {timeout:.0f}s: backlog {loader.get('backlog')}")
            time.sleep(0.5)
