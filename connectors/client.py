"""A small Kafka Connect REST client: apply a connector idempotently, wait for RUNNING, and report
a failed task with its stack trace."""

from __future__ import annotations

import enum
import time
from typing import Any

import httpx

from connectors.configs import ConnectorConfig


class ConnectError(Exception):
    """The Connect REST API refused a request or could not be reached."""


class ConnectorFailed(ConnectError):
    """A connector or one of its tasks is FAILED; `trace` is the worker's stack trace."""

    def __init__(self, connector: str, what: str, trace: str) -> None:
        lines = [line.strip() for line in trace.strip().splitlines()]
        first = lines[0] if lines else "no trace"
        causes = [line for line in lines if line.startswith("Caused by:")]
        root = f" ({causes[-1]})" if causes and causes[-1] != first else ""
        super().__init__(f"connector {connector}: {what} FAILED: {first}{root}")
        self.connector = connector
        self.trace = trace


class ApplyResult(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class ConnectClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=url, timeout=timeout, headers={"Accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ------------------------------------------------------------------------------
    def apply(self, connector: ConnectorConfig) -> ApplyResult:
        """Create or update the connector; the same config again changes nothing (no restart)."""
        desired = {k: str(v) for k, v in connector.config.items()}
        self.validate(connector)
        current = self.config(connector.name)
        if current is not None:
            current.pop("name", None)  # Connect adds the name to the stored config
            if current == desired:
                return ApplyResult.UNCHANGED
        self._request("PUT", f"/connectors/{connector.name}/config", json=desired)
        return ApplyResult.CREATED if current is None else ApplyResult.UPDATED

    def validate(self, connector: ConnectorConfig) -> None:
        """Ask the plugin to check the config (Debezium connects to the database to do so) and
        raise with every field's errors; the worker's own PUT answers a bare HTTP 500 instead."""
        plugin = connector.config.get("connector.class", "")
        body = {**connector.config, "name": connector.name}
        response = self._request("PUT", f"/connector-plugins/{plugin}/config/validate", json=body)
        assert response is not None
        report = response.json()
        if report.get("error_count", 0) == 0:
            return
        errors = [
            f"{entry['value']['name']}: {'; '.join(entry['value']['errors'])}"
            for entry in report.get("configs", [])
            if (entry.get("value") or {}).get("errors")
        ]
        raise ConnectError(f"connector {connector.name}: invalid config: " + " | ".join(errors))

    def config(self, name: str) -> dict[str, str] | None:
        response = self._request("GET", f"/connectors/{name}/config", allow_404=True)
        return None if response is None else dict(response.json())

    def status(self, name: str) -> dict[str, Any] | None:
        response = self._request("GET", f"/connectors/{name}/status", allow_404=True)
        return None if response is None else dict(response.json())

    def names(self) -> list[str]:
        response = self._request("GET", "/connectors")
        assert response is not None
        return sorted(response.json())

    def delete(self, name: str, timeout: float = 30.0) -> bool:
        """Delete the connector and wait until the worker has let it go; False when there was none."""
        if self._request("DELETE", f"/connectors/{name}", allow_404=True) is None:
            return False
        deadline = time.monotonic() + timeout
        while self.status(name) is not None:
            if time.monotonic() > deadline:
                raise ConnectError(f"connector {name} still present {timeout:.0f}s after DELETE")
            time.sleep(0.2)
        return True

    def wait_running(self, name: str, timeout: float = 60.0, settle: float = 3.0) -> dict[str, Any]:
        """Wait until the connector and all its tasks are RUNNING and stay so for `settle` seconds
        (a Debezium task reports RUNNING before it has taken its replication slot); raise on
        FAILED or time-out."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        running_since: float | None = None
        while time.monotonic() < deadline:
            last = self.status(name)
            if last is not None:
                _raise_if_failed(name, last)
                tasks = last.get("tasks", [])
                if last["connector"]["state"] == "RUNNING" and tasks and all(t["state"] == "RUNNING" for t in tasks):
                    running_since = running_since or time.monotonic()
                    if time.monotonic() - running_since >= settle:
                        return last
                else:
                    running_since = None
            time.sleep(0.25)
        raise ConnectError(f"connector {name} not RUNNING after {timeout:.0f}s (last status: {last})")

    def _request(self, method: str, path: str, *, allow_404: bool = False, **kwargs: Any) -> httpx.Response | None:
        for attempt in range(20):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise ConnectError(f"Kafka Connect at {self._http.base_url} unreachable: {exc}") from exc
            # the worker is rebalancing or still starting (409, 503, or a 500 saying so): the
            # request is fine, retry shortly
            rebalancing = response.status_code in (409, 503) or (
                response.status_code == 500 and "rebalance" in response.text.lower()
            )
            if rebalancing and attempt < 19:
                time.sleep(0.5)
                continue
            if response.status_code == 404 and allow_404:
                return None
            if response.is_error:
                try:
                    message = response.json().get("message", response.text)
                except ValueError:
                    message = response.text
                raise ConnectError(f"{method} {path}: HTTP {response.status_code}: {message}")
            return response
        raise AssertionError("unreachable")


def _raise_if_failed(name: str, status: dict[str, Any]) -> None:
    if status["connector"]["state"] == "FAILED":
        raise ConnectorFailed(name, "connector", status["connector"].get("trace", ""))
    for task in status.get("tasks", []):
        if task["state"] == "FAILED":
            raise ConnectorFailed(name, f"task {task['id']}", task.get("trace", ""))
