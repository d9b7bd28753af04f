"""Postgres access: one pool per process; a unit of work owns each transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min(2, size), max_size=size, command_timeout=30)


@asynccontextmanager
async def unit_of_work(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside one transaction: committed when the block ends, rolled back on error.
    Data-access functions take the connection and never commit on their own."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn
