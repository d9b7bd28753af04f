"""A customer's order history, read from Cassandra's `orders_by_customer` (written by the
orders_by_customer dataflow): one partition per customer, newest first, paged by Cassandra's own
paging state.

The cursor handed to clients is that paging state with an HMAC over it and the customer it
pages, so a cursor cannot be forged or replayed against another customer's partition. A
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
_MAC = 16  # bytes of HMAC-SHA256 kept in a cursor

__all__ = ["CustomerOrders", "StoreUnavailable"]

COLUMNS = (
    "order_id, created_at, status, total_minor, currency, item_count, lines, status_changed_at, trace_id, updated_at"
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
        self._select: Any = None
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
                    self._select = session.prepare(
                        f"SELECT {COLUMNS} FROM orders_by_customer WHERE customer_id = ?"  # noqa: S608 - constant
                    )
                except Exception:
                    cluster.shutdown()
                    raise
                self._cluster, self._session = cluster, session
            return self._session

    async def _page(self, customer_id: str, limit: int, state: bytes | None) -> tuple[list[Any], bytes | None]:
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
            bound = self._select.bind((customer_id,))
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
            return await answer
        except (NoHostAvailable, DriverException, OSError) as exc:
            if state is not None and type(exc).__name__ in ("InvalidRequest", "ProtocolException"):
                raise Invalid("the cursor no longer matches the listing", code="invalid-cursor") from None
            raise StoreUnavailable(
                "Cassandra (the orders_by_customer store) did not answer; retry later",
                store="cassandra",
            ) from exc

    async def page(self, customer_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        """{"items": [...], "nextCursor": str | None}, newest order first."""
        state = None if cursor is None else self.paging_state(customer_id, cursor)
        rows, next_state = await self._page(customer_id, min(max(limit, 1), MAX_PAGE), state)
        items = [
            {
                "orderId": r.order_id,
                "status": r.status,
                "total": {"amountMinor": r.total_minor, "currency": r.currency},
                "itemCount": r.item_count,
                "lines": [
                    {"productId": line.product_id, "qty": line.quantity, "unitPriceMinor": line.unit_price_minor}
                    for line in (r.lines or [])
                ],
                "statusChangedAt": {status: _iso(at) for status, at in sorted((r.status_changed_at or {}).items())},
                "createdAt": _iso(r.created_at),
                "updatedAt": _iso(r.updated_at),
                "traceId": r.trace_id,
            }
            for r in rows
        ]
        return {"items": items, "nextCursor": None if not next_state else self.cursor(customer_id, next_state)}

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
                self._cluster = self._session = None
