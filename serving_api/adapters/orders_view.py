"""A customer's order history, read from Cassandra's `orders_by_customer` (written by the
orders_by_customer dataflow): one partition per customer, newest first, paged by Cassandra's own
paging state.

The table is the one `read_models` points at (a replay's promotion moves it,
`streams.replay`), looked up again at most every POINTER_TTL_S; a listing keeps paging the table
its first page came from (kept until the replay's `drop`), so a promotion never breaks a cursor.

The cursor handed to clients is that table and paging state with an HMAC over them and the
customer it pages, so a cursor cannot be forged or replayed against another customer's partition. A
Cassandra that does not answer is `Unavailable` naming the store — the history is never read from
Postgres instead."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import threading
from datetime import UTC, datetime
from typing import Any

from serving_api.adapters.stores import StoreUnavailable
from shopstream.domain import Invalid
from shopstream.runtime.settings import Cassandra

MAX_PAGE = 100
TABLE = "orders_by_customer"  # the logical table
POINTER_TTL_S = 1.0
_MAC = 16  # bytes of HMAC-SHA256 kept in a cursor

__all__ = ["CustomerOrders", "StoreUnavailable"]

COLUMNS = ", ".join(
    (
        "order_id",
        "created_at",
        "status",
        "total_minor",
        "currency",
        "item_count",
        "order_lines",
        "status_changed_at",
        "trace_id",
        "updated_at",
    )
)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CustomerOrders:
    def __init__(self, settings: Cassandra, cursor_secret: bytes) -> None:
        self.settings = settings
        self.secret = cursor_secret
        self._cluster: Any = None
        self._session: Any = None
        self._selects: dict[str, Any] = {}  # physical table → its prepared SELECT
        self._table, self._table_at = TABLE, float("-inf")
        self._lock = threading.Lock()

    # --- cursors -----------------------------------------------------------------------------
    def _mac(self, customer_id: str, state: bytes) -> bytes:
        return hmac.new(self.secret, customer_id.encode() + b"\x00" + state, hashlib.sha256).digest()[:_MAC]

    def cursor(self, customer_id: str, state: bytes) -> str:
        return base64.urlsafe_b64encode(self._mac(customer_id, state) + state).decode().rstrip("=")

    def paging_state(self, customer_id: str, cursor: str) -> bytes:
        invalid = Invalid(
            "the cursor is not one this API gave out for this customer's orders",
            code="invalid-cursor",
            title="Invalid cursor",
            invalid_params=[{"name": "cursor", "reason": "not a cursor of this listing"}],
        )
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        mac, state = raw[:_MAC], raw[_MAC:]
        if not state or not hmac.compare_digest(mac, self._mac(customer_id, state)):
            raise invalid
        return state

    # --- reads -------------------------------------------------------------------------------
    def _connect(self) -> Any:
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy, TokenAwarePolicy

        with self._lock:
            if self._session is None:
                hosts = self.settings.hosts()
                profile = ExecutionProfile(
                    load_balancing_policy=TokenAwarePolicy(RoundRobinPolicy()), request_timeout=self.settings.timeout
                )
                cluster = Cluster(
                    contact_points=[h for h, _ in hosts],
                    port=hosts[0][1],
                    execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                    connect_timeout=self.settings.timeout,
                    control_connection_timeout=self.settings.timeout,
                )
                try:
                    session = cluster.connect(self.settings.keyspace)
                except Exception:
                    cluster.shutdown()
                    raise
                self._cluster, self._session = cluster, session
            return self._session

    def _pointed(self) -> str:
        """The physical table `read_models` names now (its own name without a row)."""
        import time

        session = self._connect()
        try:
            row = session.execute(
                "SELECT physical FROM read_models WHERE name = %s", (TABLE,), timeout=self.settings.timeout
            ).one()
        except Exception as exc:
            if "unconfigured table" not in str(exc).lower():  # a keyspace from before the pointers
                raise
            row = None
        self._table, self._table_at = (row.physical if row is not None else TABLE), time.monotonic()
        return self._table

    def _select(self, table: str) -> Any:
        found = self._selects.get(table)
        if found is None:
            if not table.replace("_", "").isalnum():
                raise Invalid("the cursor no longer matches the listing", code="invalid-cursor")
            found = self._selects[table] = self._connect().prepare(
                f"SELECT {COLUMNS} FROM {table} WHERE customer_id = ?"  # noqa: S608 - a table of ours
            )
        return found

    async def _table_now(self) -> str:
        import time

        if time.monotonic() - self._table_at < POINTER_TTL_S:
            return self._table
        return await asyncio.to_thread(self._pointed)

    async def _page(
        self, customer_id: str, limit: int, table: str | None, state: bytes | None
    ) -> tuple[list[Any], str, bytes | None]:
        """One page, read without a thread: the driver's own event loop answers into this one."""
        from cassandra import DriverException
        from cassandra.cluster import NoHostAvailable

        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[list[Any], bytes | None]] = loop.create_future()

        def settle(result: tuple[list[Any], bytes | None] | None, error: BaseException | None) -> None:
            if answer.done():
                return
            if error is not None:
                answer.set_exception(error)
            else:
                assert result is not None
                answer.set_result(result)

        try:
            session = self._session if self._session is not None else await asyncio.to_thread(self._connect)
            if table is None:
                table = await self._table_now()
            select: Any = self._selects.get(table)
            if select is None:
                select = await asyncio.to_thread(self._select, table)
            bound = select.bind((customer_id,))
            bound.fetch_size = limit
            future = session.execute_async(bound, paging_state=state, timeout=self.settings.timeout)

            def done(_rows: Any) -> None:
                try:
                    result = future.result()  # complete already: the ResultSet with its paging state
                    loop.call_soon_threadsafe(settle, (list(result.current_rows), result.paging_state), None)
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                    loop.call_soon_threadsafe(settle, None, exc)

            def failed(exc: BaseException) -> None:
                loop.call_soon_threadsafe(settle, None, exc)

            future.add_callbacks(done, failed)
            rows, next_state = await answer
            return rows, table, next_state
        except (NoHostAvailable, DriverException, OSError) as exc:
            if state is not None and type(exc).__name__ in ("InvalidRequest", "ProtocolException"):
                raise Invalid("the cursor no longer matches the listing", code="invalid-cursor") from None
            raise StoreUnavailable(
                "Cassandra (the orders_by_customer store) did not answer; retry later",
                store="cassandra",
            ) from exc

    async def page(self, customer_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        """{"items": [...], "nextCursor": str | None}, newest order first."""
        table: str | None = None
        state: bytes | None = None
        if cursor is not None:  # the table the listing started on, and where in it
            named, _, state = self.paging_state(customer_id, cursor).partition(b"\x00")
            table = named.decode("ascii", "replace")
        rows, table, next_state = await self._page(customer_id, min(max(limit, 1), MAX_PAGE), table, state)
        items = [
            {
                "orderId": r.order_id,
                "status": r.status,
                "total": {"amountMinor": r.total_minor, "currency": r.currency},
                "itemCount": r.item_count,
                "lines": [
                    {"productId": line.product_id, "qty": line.quantity, "unitPriceMinor": line.unit_price_minor}
                    for line in (r.order_lines or [])
                ],
                "statusChangedAt": {status: _iso(at) for status, at in sorted((r.status_changed_at or {}).items())},
                "createdAt": _iso(r.created_at),
                "updatedAt": _iso(r.updated_at),
                "traceId": r.trace_id,
            }
            for r in rows
        ]
        following = None if not next_state else self.cursor(customer_id, table.encode() + b"\x00" + next_state)
        return {"items": items, "nextCursor": following}

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
                self._cluster = self._session = None
