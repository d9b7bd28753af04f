"""/ws/orders: order status changes pushed to their owners (or admins).

Authenticate with `?token=<JWT>` (browsers cannot set headers on a WebSocket) or an
Authorization header. Client frames are JSON objects:

    {"type": "subscribe", "orderId": "ORD-…"}     follow one order (yours, or any as ADMIN)
    {"type": "subscribe", "channel": "personal"}  follow all your orders
    {"type": "unsubscribe", "orderId": "ORD-…"}
    {"type": "ack", "id": "<message id>"}         done with a status message
    {"type": "ping"}

The server sends {"type": "status", "id", "orderId", "status", "at"} for each change, keeps
it until acknowledged and sends it again on the next subscription (any worker, any
connection); {"type": "heartbeat"} after `?heartbeat=` quiet seconds; and for a frame it cannot take,
{"type": "error", "code", "message"} — the socket stays open."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from serving_api.auth.tokens import Principal
from serving_api.http.problems import problem_for
from serving_api.resources import Resources
from serving_api.services import orders
from serving_api.streaming.orders import OrderRouter, StatusChange, acknowledge, remember, unacknowledged
from shopstream.domain import DomainError

router = APIRouter()
log = logging.getLogger("shopstream.ws")
PROBLEM_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 503: "UNAVAILABLE"}


@router.websocket("/ws/orders")
async def order_updates(
    ws: WebSocket,
    token: Annotated[str | None, Query(max_length=4_000)] = None,
    heartbeat: Annotated[float, Query(ge=1, le=60)] = 15,
) -> None:
    res: Resources = ws.app.state.resources
    router: OrderRouter = ws.app.state.order_router
    try:
        who = res.authn.principal(f"Bearer {token}" if token else ws.headers.get("authorization"))
    except DomainError as refused:
        # closed before the handshake completes: the client sees an HTTP 403
        await ws.close(code=4401, reason=refused.detail[:120])
        return
    await ws.accept()
    await OrderSession(ws, who, res, router, heartbeat).run()


class OrderSession:
    """One socket: its subscriptions, the frames queued for it, a receiving and a sending loop."""

    def __init__(self, ws: WebSocket, who: Principal, res: Resources, router: OrderRouter, heartbeat: float) -> None:
        self.ws, self.who, self.res, self.router, self.heartbeat = ws, who, res, router, heartbeat
        self.orders: set[str] = set()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self.closing = False

    def deliver(self, change: StatusChange) -> None:
        """The router's call for a change this session follows."""
        self._push({"change": change})

    def _push(self, item: dict[str, Any]) -> None:
        """Queue a frame; a client 10,000 frames behind is closed (1013: try again later) and
        gets its unacknowledged messages again when it subscribes anew."""
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            if not self.closing:
                self.closing = True
                asyncio.ensure_future(self.ws.close(code=1013, reason="too far behind; reconnect"))

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(t) for t in (self._receive(), self._send())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.router.forget(self, self.orders, self.who.user_id)
            for task in tasks:
                task.cancel()

    async def _receive(self) -> None:
        while True:
            try:
                text = await self.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                return
            try:
                frame = json.loads(text)
                if not isinstance(frame, dict):
                    raise ValueError("a frame is a JSON object")
            except ValueError as exc:
                self._error("BAD_FRAME", f"not a JSON object: {exc}")
                continue
            try:
                await self._handle(frame)
            except DomainError as refused:
                # the REST edge's table: a frame is refused as the same request over HTTP would be
                problem = problem_for(refused)
                self._error(PROBLEM_CODES.get(problem.status, "ERROR"), problem.detail or problem.title)
            except RedisError:
                log.exception("ws: Redis unavailable")
                self._error("UNAVAILABLE", "acknowledgements are unavailable for now")

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "subscribe" and frame.get("channel") == "personal":
            self.router.follow_user(self, self.who.user_id)
            self._push({"type": "subscribed", "channel": "personal"})
            await self._resend(lambda f: True)
        elif kind == "subscribe" and isinstance(frame.get("orderId"), str):
            order_id = frame["orderId"]
            # the same policy question as GET /api/v1/orders/{id}
            await self.res.authz.require(self.who, "order.read", await orders.owner_and_status(self.res.pool, order_id))
            self.orders.add(order_id)
            self.router.follow_order(self, order_id)
            self._push({"type": "subscribed", "orderId": order_id})
            await self._resend(lambda f: f["orderId"] == order_id)
        elif kind == "unsubscribe" and isinstance(frame.get("orderId"), str):
            self.orders.discard(frame["orderId"])
            self.router.unfollow_order(self, frame["orderId"])
            self._push({"type": "unsubscribed", "orderId": frame["orderId"]})
        elif kind == "ack" and isinstance(frame.get("id"), str):
            if await acknowledge(self.res.cache, self.who.user_id, frame["id"]):
                self._push({"type": "acked", "id": frame["id"]})
            else:
                self._error("UNKNOWN_MESSAGE", f"no unacknowledged message {frame['id']}")
        elif kind == "ping":
            self._push({"type": "pong"})
        else:
            self._error("UNKNOWN_TYPE", "expected subscribe (orderId or channel personal), unsubscribe, ack or ping")

    async def _resend(self, wanted: Any) -> None:
        for frame in await unacknowledged(self.res.cache, self.who.user_id):
            if wanted(frame):
                self._push({**frame, "redelivered": True})

    def _error(self, code: str, message: str) -> None:
        self._push({"type": "error", "code": code, "message": message})

    async def _send(self) -> None:
        while True:
            try:
                item = await asyncio.wait_for(self.outbox.get(), timeout=self.heartbeat)
            except TimeoutError:  # quiet for a heartbeat's length
                item = {"type": "heartbeat"}
            change = item.get("change")
            if isinstance(change, StatusChange):
                try:
                    await remember(self.res.cache, self.who.user_id, change)
                except RedisError:  # still deliver; it just cannot be redelivered
                    log.exception("ws: Redis unavailable")
                    self._error("UNAVAILABLE", "this message cannot be redelivered if unacknowledged")
                item = change.frame()
            try:
                await self.ws.send_json(item)
            except (WebSocketDisconnect, RuntimeError):
                return
