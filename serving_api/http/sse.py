"""Server-sent events: /sse/flash-sales (flash sales starting and ending, with `id:` lines a client
can resume from with Last-Event-ID, and keep-alive comments) and /sse/dashboard (the live
dashboard's snapshots, the page itself at /dashboard)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from serving_api.http.deps import resources
from serving_api.http.problems import Problem, invalid
from serving_api.services import dashboard
from serving_api.streaming.flash_sales import FeedEvent, FlashSaleFeed, decode_position, sse_frame

router = APIRouter(tags=["push"])
log = logging.getLogger("shopstream.sse")
DASHBOARD = Path(__file__).parent / "static" / "dashboard.html"


@router.get(
    "/sse/flash-sales",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An endless event stream"}},
)
async def flash_sales(
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=2_000)] = None,
    keepalive: Annotated[float, Query(ge=1, le=60, description="Seconds between keep-alive comments")] = 15,
) -> StreamingResponse:
    """`flash_sale.started` / `flash_sale.ended` as they happen (JSON data); reconnect with
    Last-Event-ID to get what was missed."""
    feed: FlashSaleFeed = request.app.state.flash_feed
    if not feed.ready:
        raise Problem(503, "feed-starting", "Flash-sale feed not ready", "the feed is still reaching Kafka; retry")
    try:
        since = decode_position(last_event_id) if last_event_id else None
    except ValueError as exc:
        raise invalid(str(exc), [{"name": "Last-Event-ID", "reason": str(exc)}]) from exc

    async def stream() -> AsyncIterator[str]:
        yield f"retry: 2000\n: connected, keep-alive every {keepalive:g}s\n\n"
        events = feed.events(since).__aiter__()
        pending: asyncio.Task[tuple[str, FeedEvent]] | None = None
        try:
            while not await request.is_disconnected():
                if pending is None:
                    pending = asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=keepalive)
                if not done:
                    yield ": keep-alive\n\n"
                    continue
                try:
                    event_id, event = pending.result()
                except StopAsyncIteration:
                    return  # fell behind: the client reconnects with its Last-Event-ID
                pending = None
                yield sse_frame(event_id, event)
        finally:
            if pending is not None:  # the generator must be idle before it can be closed
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
            await events.aclose()  # type: ignore[attr-defined]

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get(
    "/sse/dashboard",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "A snapshot every `interval` s"}},
)
async def dashboard_feed(
    request: Request,
    token: Annotated[str, Query(max_length=4_000, description="An ADMIN JWT (EventSource sets no headers)")],
    interval: Annotated[float, Query(ge=0.5, le=60, description="Seconds between snapshots")] = 2,
) -> StreamingResponse:
    """`snapshot` events for the live dashboard (ADMIN): revenue per minute, top products,
    inventory alerts, running flash sales — from the dataflows' projections."""
    res = resources(request)
    await res.authz.require(res.authn.principal(f"Bearer {token}"), "dashboard.read")

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            try:
                picture = await dashboard.snapshot(res.pool, res.cache)
                yield f"event: snapshot\ndata: {json.dumps(picture, separators=(',', ':'))}\n\n"
            except Exception:  # Redis or Postgres away: the page says so and keeps listening
                log.exception("dashboard snapshot failed")
                yield f"event: unavailable\ndata: {json.dumps({'detail': 'projections unreachable; retrying'})}\n\n"
            await asyncio.sleep(interval)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    return HTMLResponse(DASHBOARD.read_text())
