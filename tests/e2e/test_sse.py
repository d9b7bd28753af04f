"""Server-sent flash sales over real sockets: a started sale reaches a connected client; a client
that reconnects with Last-Event-ID gets what it missed; keep-alive comments flow; a bad
Last-Event-ID is a 422 problem."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from dev.stack.stack import Stack
from tests.integration.api_client import Storefront


class SseClient:
    """Reads /sse/flash-sales in a thread; frames (id, event, data) and comments land in queues."""

    def __init__(self, base_url: str, last_event_id: str | None = None, keepalive: int = 1) -> None:
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.comments: queue.Queue[str] = queue.Queue()
        self.status: int | None = None
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self._thread = threading.Thread(target=self._read, args=(base_url, headers, keepalive), daemon=True)
        self._thread.start()
        assert self._connected.wait(10) or self.status is not None, "no SSE connection"

    def _read(self, base_url: str, headers: dict[str, str], keepalive: int) -> None:
        try:
            self._stream(base_url, headers, keepalive)
        except httpx.HTTPError as exc:  # the server went away: a failure only while we listen
            if not self._stop.is_set():
                self.error = exc
                self._connected.set()

    def _stream(self, base_url: str, headers: dict[str, str], keepalive: int) -> None:
        path = f"/sse/flash-sales?keepalive={keepalive}"
        with (
            httpx.Client(base_url=base_url, timeout=httpx.Timeout(5, read=None)) as client,
            client.stream("GET", path, headers=headers) as r,
        ):
            self.status = r.status_code
            frame: dict[str, Any] = {}
            for line in r.iter_lines():
                self._connected.set()
                if self._stop.is_set():
                    return
                if line.startswith(":"):
                    self.comments.put(line)
                elif line == "":
                    if "event" in frame:
                        self.frames.put(frame)
                    frame = {}
                else:
                    name, _, value = line.partition(": ")
                    frame[name] = json.loads(value) if name == "data" else value

    def next(self, match: Any, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = self.frames.get(timeout=0.5)
            except queue.Empty:
                continue
            if match(frame):
                return frame
        raise AssertionError(f"no matching frame within {timeout}s (stream error: {self.error})")

    def close(self) -> None:
        self._stop.set()


def start_sale(shop: Storefront, product_id: str) -> dict[str, Any]:
    ends = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    body = {"productId": product_id, "salePrice": {"amount": "5.00", "currency": "USD"}, "endsAt": ends}
    r = shop.http.post("/api/v1/flash-sales", headers=shop.auth("admin"), json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_started_sale_reaches_clients_and_a_reconnecting_one_gets_what_it_missed(
    stack: Stack, shop: Storefront
) -> None:
    url = stack.settings.api.url
    product = shop.product(stock=1)
    first = SseClient(url)
    sale1 = start_sale(shop, product["id"])
    got = first.next(lambda f: f["data"].get("saleId") == sale1["id"])
    assert got["event"] == "flash_sale.started" and got["data"]["productId"] == product["id"]
    assert got["data"]["salePrice"] == {"amountMinor": 500, "currency": "USD"}
    first.close()  # the client goes away; meanwhile:
    sale2 = start_sale(shop, product["id"])
    assert shop.http.post(f"/api/v1/flash-sales/{sale1['id']}/end", headers=shop.auth("admin")).status_code == 200
    back = SseClient(url, last_event_id=got["id"])
    missed = [back.next(lambda f: f["data"].get("saleId") in (sale1["id"], sale2["id"])) for _ in range(2)]
    assert {(f["event"], f["data"]["saleId"]) for f in missed} == {
        ("flash_sale.started", sale2["id"]),
        ("flash_sale.ended", sale1["id"]),
    }
    assert all(f["id"] != got["id"] for f in missed)
    back.close()


def test_keep_alive_comments_and_a_bad_last_event_id(stack: Stack) -> None:
    client = SseClient(stack.settings.api.url, keepalive=1)
    deadline = time.monotonic() + 10
    seen = []
    while time.monotonic() < deadline and ": keep-alive" not in seen:
        with contextlib.suppress(queue.Empty):
            seen.append(client.comments.get(timeout=0.5))
    client.close()
    assert ": keep-alive" in seen
    r = httpx.get(f"{stack.settings.api.url}/sse/flash-sales", headers={"Last-Event-ID": "x9.1"}, timeout=10)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
