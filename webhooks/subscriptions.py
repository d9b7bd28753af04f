"""Webhook subscriptions (ADMIN, through the REST API): a partner's endpoint, the event types it
wants and the secret its POSTs are signed with. The secret is shown once, when it is created."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from shopstream.domain import Invalid, NotFound
from webhooks.deliveries import SUBSCRIBABLE

PARTNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_SECRET = 16
COLUMNS = "id, partner_id, target_url, event_types, created_by, created_at, deleted_at"


@dataclass(frozen=True)
class Endpoint:
    """What the dispatcher needs to POST one delivery."""

    subscription_id: str
    target_url: str
    secret: str
    active: bool


def _json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "partnerId": row["partner_id"],
        "url": row["target_url"],
        "eventTypes": list(row["event_types"]),
        "active": row["deleted_at"] is None,
        "createdBy": row["created_by"],
        "createdAt": row["created_at"].isoformat(),
    }


def _valid_target(url: str) -> bool:
    """An absolute http(s) URL the HTTP client can send to (urlsplit accepts ports like `:abc`)."""
    try:
        parsed = httpx.URL(url)
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except (httpx.InvalidURL, ValueError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


async def _internal_address(host: str) -> str | None:
    """The first internal address `host` is or resolves to; None when all are public."""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError:
            return None  # unresolvable now: deliveries will fail and be retried, then dead-lettered
        addresses = [ipaddress.ip_address(str(info[4][0])) for info in infos]
    for address in addresses:
        if not address.is_global or address.is_multicast:
            return str(address)
    return None


def _check(partner_id: str, url: str, event_types: list[str], secret: str | None) -> None:
    problems = []
    if not PARTNER_PATTERN.match(partner_id):
        problems.append({"name": "partnerId", "reason": f"must match {PARTNER_PATTERN.pattern}"})
    if not _valid_target(url):
        problems.append({"name": "url", "reason": "must be an absolute http(s) URL with a valid host and port"})
    unknown = sorted(set(event_types) - set(SUBSCRIBABLE))
    if not event_types or unknown:
        reason = f"unknown: {', '.join(unknown)}; " if unknown else ""
        problems.append({"name": "eventTypes", "reason": f"{reason}one or more of {', '.join(SUBSCRIBABLE)}"})
    if secret is not None and len(secret) < MIN_SECRET:
        problems.append({"name": "secret", "reason": f"at least {MIN_SECRET} characters"})
    if problems:
        raise Invalid(f"{len(problems)} invalid field(s)", invalid_params=problems)


async def create_subscription(
    conn: asyncpg.Connection,
    user_id: str,
    partner_id: str,
    url: str,
    event_types: list[str],
    secret: str | None,
    allow_private_targets: bool = False,
) -> dict[str, Any]:
    """Subscribe `url` to `event_types`; the answer holds the secret (generated unless given) —
    the only time it is shown. Unless `allow_private_targets`, a URL whose host is (or resolves to)
    a loopback, private, link-local or otherwise internal address is refused: the dispatcher must
    not be a way into the platform's own services."""
    _check(partner_id, url, event_types, secret)
    if not allow_private_targets:
        internal = await _internal_address(httpx.URL(url).host)
        if internal:
            raise Invalid(
                "1 invalid field(s)",
                invalid_params=[{"name": "url", "reason": f"targets an internal address ({internal})"}],
            )
    secret = secret or "whsec_" + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"""INSERT INTO webhook_subscriptions (id, partner_id, target_url, event_types, secret, created_by)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}""",
        f"WHS-{uuid.uuid4().hex[:20]}",
        partner_id,
        url,
        sorted(set(event_types)),
        secret,
        user_id,
    )
    return {**_json(row), "secret": secret}


async def list_subscriptions(conn: asyncpg.Connection, partner_id: str | None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM webhook_subscriptions
            WHERE deleted_at IS NULL AND ($1::text IS NULL OR partner_id = $1) ORDER BY created_at, id""",
        partner_id,
    )
    return [_json(r) for r in rows]


async def get_subscription(conn: asyncpg.Connection, subscription_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM webhook_subscriptions WHERE id = $1", subscription_id)
    if row is None:
        raise NotFound("Subscription", subscription_id)
    return _json(row)


async def delete_subscription(conn: asyncpg.Connection, user_id: str, subscription_id: str) -> None:
    """Unsubscribe (kept, with its attempts, as history); deliveries still queued are dropped."""
    row = await conn.fetchrow(
        """UPDATE webhook_subscriptions SET deleted_at = coalesce(deleted_at, now()),
                  deleted_by = coalesce(deleted_by, $2)
           WHERE id = $1 RETURNING id""",
        subscription_id,
        user_id,
    )
    if row is None:
        raise NotFound("Subscription", subscription_id)


async def list_attempts(conn: asyncpg.Connection, subscription_id: str, limit: int) -> list[dict[str, Any]]:
    """The latest delivery attempts of a subscription, newest first."""
    await get_subscription(conn, subscription_id)
    rows = await conn.fetch(
        """SELECT delivery_id, event_id, event_type, attempt, outcome, status_code, error, duration_ms,
                  attempted_at
           FROM webhook_delivery_attempts WHERE subscription_id = $1
           ORDER BY attempted_at DESC, id DESC LIMIT $2""",
        subscription_id,
        limit,
    )
    return [
        {
            "deliveryId": str(r["delivery_id"]),
            "eventId": str(r["event_id"]),
            "eventType": r["event_type"],
            "attempt": r["attempt"],
            "outcome": r["outcome"],
            "statusCode": r["status_code"],
            "error": r["error"],
            "durationMs": r["duration_ms"],
            "attemptedAt": r["attempted_at"].isoformat(),
        }
        for r in rows
    ]


async def subscribers(conn: asyncpg.Connection, event_types: list[str]) -> dict[str, list[str]]:
    """Active subscription ids by event type, for the fan-out."""
    rows = await conn.fetch(
        """SELECT id, event_types FROM webhook_subscriptions
           WHERE deleted_at IS NULL AND event_types && $1::text[] ORDER BY id""",
        event_types,
    )
    out: dict[str, list[str]] = {name: [] for name in event_types}
    for row in rows:
        for name in row["event_types"]:
            if name in out:
                out[name].append(row["id"])
    return out


async def endpoint(conn: asyncpg.Connection, subscription_id: str) -> Endpoint | None:
    row = await conn.fetchrow(
        "SELECT id, target_url, secret, deleted_at FROM webhook_subscriptions WHERE id = $1", subscription_id
    )
    if row is None:
        return None
    return Endpoint(row["id"], row["target_url"], row["secret"], row["deleted_at"] is None)
