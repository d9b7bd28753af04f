"""Idempotency-Key (domain spec §9): the key, scoped by user, with a hash of the request. The same
key and body within 24 h replays the first response; the same key with another body is refused;
concurrent duplicates wait for the first and get its response, so one order is made."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from shopstream.domain import Conflict, Invalid, Malformed

# a claim older than this with no response is abandoned (no request takes that long)
CLAIM_SECONDS = 120.0


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps({"method": method, "path": path, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    status: int
    body: Any


async def _take(
    conn: asyncpg.Connection, user_id: str, key: str, digest: str, hours: int
) -> tuple[bool, asyncpg.Record | None]:
    """(True, None) when the key is now ours; else (False, the key's row, None if it expired meanwhile).
    A row of another request body is refused (Invalid)."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND expires_at < now()", user_id, key
    )
    inserted = await conn.fetchval(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at) "
        "VALUES ($1, $2, $3, now() + make_interval(hours => $4)) ON CONFLICT DO NOTHING RETURNING 1",
        user_id,
        key,
        digest,
        hours,
    )
    if inserted:
        return True, None
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys WHERE user_id = $1 AND key = $2", user_id, key
    )
    if row is not None and row["request_hash"] != digest:
        raise Invalid(
            f"the key {key!r} was first used with another body; use a new key for a new request",
            code="idempotency-key-reused",
            title="Idempotency-Key reused with a different request",
        )
    return False, row


def _in_progress(detail: str) -> Conflict:
    return Conflict(detail, code="idempotency-in-progress", title="Request in progress")


async def claim(
    pool: asyncpg.Pool, user_id: str, key: str, digest: str, hours: int, wait_seconds: float = 10.0
) -> Replay | None:
    """None: the caller owns the key and must `finish` it. A Replay: answer with that instead."""
    if not key or len(key) > 200:
        raise Malformed(
            "send a unique Idempotency-Key (1-200 characters) with every POST that creates something",
            code="idempotency-key",
            title="Idempotency-Key header required",
        )
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        async with pool.acquire() as conn:
            ours, row = await _take(conn, user_id, key, digest, hours)
        if ours:
            return None
        if row is None:
            continue  # expired and removed meanwhile: claim again
        if row["status_code"] is not None:
            return Replay(row["status_code"], json.loads(row["response"]))
        if asyncio.get_running_loop().time() > deadline:
            raise _in_progress(f"a request with the key {key!r} is still being processed; retry later")
        await asyncio.sleep(0.05)


async def claim_in_transaction(
    conn: asyncpg.Connection, user_id: str, key: str, digest: str, hours: int
) -> Replay | None:
    """`claim` inside the caller's transaction: the key commits with the change it guards, or not
    at all (a failed request leaves no key, so its retry runs again). A concurrent request with the
    same key waits on the row until the first commits, then replays it. None: the caller owns the
    key and must `finish_in_transaction` it before committing."""
    if not key or len(key) > 200:
        raise Malformed(
            "an Idempotency-Key has 1-200 characters", code="idempotency-key", title="Idempotency-Key too long"
        )
    ours, row = await _take(conn, user_id, key, digest, hours)
    if ours:
        return None
    if row is None or row["status_code"] is None:
        raise _in_progress(f"the key {key!r} is in use; retry later")
    return Replay(row["status_code"], json.loads(row["response"]))


async def finish_in_transaction(conn: asyncpg.Connection, user_id: str, key: str, status: int, body: Any) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE user_id = $1 AND key = $2",
        user_id,
        key,
        status,
        json.dumps(body),
    )


async def finish(pool: asyncpg.Pool, user_id: str, key: str, status: int, body: Any) -> None:
    """Store the response to replay (any outcome the client caused: 2xx and 4xx)."""
    await pool.execute(
        "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE user_id = $1 AND key = $2",
        user_id,
        key,
        status,
        json.dumps(body),
    )


async def abandon(pool: asyncpg.Pool, user_id: str, key: str) -> None:
    """A server-side failure: free the key so that a retry runs again."""
    await pool.execute(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status_code IS NULL", user_id, key
    )
