"""WebSocket order status over real sockets: paying an order reaches its subscriber within 2 s;
another user's subscription is refused with an error frame (the socket stays open); an
unacknowledged message comes again on the next subscription, an acknowledged one does not; bad
frames get typed errors; heartbeats flow; a bad token closes the handshake."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from dev.stack.stack import Stack
from tests.integration.api_client import Storefront


def socket(stack: Stack, shop: Storefront, who: str, heartbeat: int = 15) -> ClientConnection:
    url = stack.settings.api.url.replace("http://", "ws://")
    return connect(f"{url}/ws/orders?heartbeat={heartbeat}&token={shop.tokens[who]}", open_timeout=10)


def frames_until(ws: ClientConnection, match: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        if match(frame):
            return frame  # type: ignore[no-any-return]
    raise AssertionError("no matching frame")


def test_paying_an_order_reaches_its_subscriber_and_others_are_refused(stack: Stack, shop: Storefront) -> None:
    product = shop.product(stock=2)
    order = shop.order("alice", [(product["id"], 1)]).json()
    with socket(stack, shop, "alice") as alice, socket(stack, shop, "bob") as bob:
        alice.send(json.dumps({"type": "subscribe", "orderId": order["id"]}))
        assert frames_until(alice, lambda f: f["type"] == "subscribed")["orderId"] == order["id"]
        bob.send(json.dumps({"type": "subscribe", "orderId": order["id"]}))
        refused = frames_until(bob, lambda f: f["type"] == "error")
        assert refused["code"] == "FORBIDDEN"
        bob.send(json.dumps({"type": "ping"}))
        assert frames_until(bob, lambda f: True)["type"] == "pong", "the socket stays open"

        paid_at = time.monotonic()
        assert shop.http.post(f"/api/v1/orders/{order['id']}/pay", headers=shop.auth("alice")).status_code == 200
        status = frames_until(alice, lambda f: f["type"] == "status" and f["status"] == "PAID", timeout=2)
        assert time.monotonic() - paid_at < 2
        assert status["orderId"] == order["id"] and status["id"]


def test_unacknowledged_messages_come_again_and_acknowledged_ones_do_not(stack: Stack, shop: Storefront) -> None:
    product = shop.product(stock=2)
    with socket(stack, shop, "alice") as ws:
        ws.send(json.dumps({"type": "subscribe", "channel": "personal"}))
        frames_until(ws, lambda f: f["type"] == "subscribed")
        order = shop.order("alice", [(product["id"], 1)]).json()
        first = frames_until(ws, lambda f: f["type"] == "status" and f["orderId"] == order["id"])
        assert first["status"] == "PENDING"
    with socket(stack, shop, "alice") as ws:  # reconnect without having acknowledged
        ws.send(json.dumps({"type": "subscribe", "orderId": order["id"]}))
        again = frames_until(ws, lambda f: f["type"] == "status" and f["id"] == first["id"])
        assert again["redelivered"] is True
        ws.send(json.dumps({"type": "ack", "id": first["id"]}))
        assert frames_until(ws, lambda f: f["type"] == "acked")["id"] == first["id"]
        ws.send(json.dumps({"type": "ack", "id": first["id"]}))
        assert frames_until(ws, lambda f: f["type"] == "error")["code"] == "UNKNOWN_MESSAGE"
    with socket(stack, shop, "alice") as ws:
        ws.send(json.dumps({"type": "subscribe", "orderId": order["id"]}))
        frames_until(ws, lambda f: f["type"] == "subscribed")
        ws.send(json.dumps({"type": "ping"}))
        nothing_redelivered = frames_until(ws, lambda f: f["type"] in ("pong", "status"))
        assert nothing_redelivered["type"] == "pong"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "BAD_FRAME"),
        ("[1, 2]", "BAD_FRAME"),
        ('{"type": "dance"}', "UNKNOWN_TYPE"),
        ('{"type": "subscribe", "orderId": "ORD-none"}', "NOT_FOUND"),
    ],
)
def test_bad_frames_get_typed_errors(stack: Stack, shop: Storefront, frame: str, code: str) -> None:
    with socket(stack, shop, "bob") as ws:
        ws.send(frame)
        assert frames_until(ws, lambda f: f["type"] == "error")["code"] == code


def test_heartbeats_and_a_bad_token(stack: Stack, shop: Storefront) -> None:
    with socket(stack, shop, "bob", heartbeat=1) as ws:
        assert frames_until(ws, lambda f: f["type"] == "heartbeat", timeout=5)
    url = stack.settings.api.url.replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as refused:  # closed before the handshake completes
        connect(f"{url}/ws/orders?token=not-a-jwt", open_timeout=10)
    assert refused.value.response.status_code == 403
