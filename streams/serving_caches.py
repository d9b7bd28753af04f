"""serving_caches: the serving API's caches, kept only by consuming events (seed §7, §13: no side
channel from the writers):

- product.updated → drop `product:{id}` and `gql:product:{id}`, and leave the product's version
  as their floor so that a read that raced the update cannot put the older copy back
  (`serving_api.services.product_cache`), until the update's event time plus the floor TTL;
- order events → `order_status:{orderId}` (hash: status, userId, updatedAt), written through on
  each event and removed once the order is fulfilled or canceled (it expires a minute after).

Both are stages of one projection: their inputs are keyed by different entities (products and
orders), so the engine routes each input to the stage of its key; the order status rules (its
rank, which statuses are final) are `shopstream.domain.orders`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shopstream.domain import OrderStatus, event_type
from shopstream.domain.orders import STATUS_RANK, is_final
from shopstream.domain.typed_events import OrderCanceled, OrderCreated, OrderEvent, OrderFulfilled, OrderPaid
from shopstream.domain.typed_events import ProductUpdated as ProductUpdatedEvent
from streams.core import BaseStage, Invalidate, Item, Projection, Stepped, Upsert, Write
from streams.settings import ServingCachesSettings

NAME = "serving_caches"
SUMMARY = "product.updated → drops product:{id}, gql:product:{id}; order events → order_status:{orderId}"
SETTINGS = ServingCachesSettings
PRODUCT_UPDATED = event_type("ecommerce.product.product.updated.v1")
ORDER_EVENTS = tuple(
    event_type(f"ecommerce.order.order.{kind}.v1") for kind in ("created", "paid", "fulfilled", "canceled")
)
FLOOR, ENTRIES = "product:{}:floor", ("product:{}", "gql:product:{}")
OUTPUTS = ("redis DEL product:{id} gql:product:{id}", "redis product:{id}:floor", "redis order_status:{orderId}")
TERMINAL_LINGER_MS = 60_000  # a finished order's status stays this long, for late readers
# the domain's ranks and final statuses by the status's text (what the state keeps): an Enum lookup
# by value per event costs more than the rest of the step
RANK_OF = {status.value: rank for status, rank in STATUS_RANK.items()}
FINAL = frozenset(status.value for status in OrderStatus if is_final(status))
STATUS_OF: dict[type[Any], OrderStatus] = {
    OrderCreated: OrderStatus.PENDING,
    OrderPaid: OrderStatus.PAID,
    OrderFulfilled: OrderStatus.FULFILLED,
    OrderCanceled: OrderStatus.CANCELED,
}


class InvalidationStage(BaseStage[Any, Any]):
    """Keyed by productId: the product's cache entries to drop, once per version. Contract 1.0
    records carry no version (0): they predate every cache entry written with one."""

    name = "product_invalidation"
    forwards = False

    def __init__(self, floor_ttl_ms: int) -> None:
        self.floor_ttl_ms = floor_ttl_ms

    def step(
        self, key: str, state: tuple[int, int] | None, items: Sequence[Item[ProductUpdatedEvent]]
    ) -> Stepped[tuple[int, int]]:
        # (version, event time) of the newest update; Item(ProductUpdated)
        newest = max(((item.value.version or 0, item.event_time) for item in items), default=(0, 0))
        if newest[0] <= (state[0] if state else 0):
            return Stepped(state)
        return Stepped(newest, self.current(key, newest))

    def current(self, key: str, state: tuple[int, int]) -> list[Write]:
        # SET product:{id}:floor version PXAT <update's time + floor TTL>; DEL product:{id} gql:product:{id}
        version, at = state
        drops = tuple(e.format(key) for e in ENTRIES)
        return [Invalidate(FLOOR.format(key), version, drops, at + self.floor_ttl_ms)]

    def dump(self, state: tuple[int, int]) -> Any:
        return list(state)

    def load(self, data: Any) -> tuple[int, int]:
        # a state from before the update's time was kept: its floor has long expired
        return (int(data), 0) if isinstance(data, int) else (int(data[0]), int(data[1]))


@dataclass(slots=True)
class OrderStatusState:
    status: str
    user_id: str
    updated_at: int  # epoch ms

    @property
    def rank(self) -> int:
        return RANK_OF[self.status]


class OrderStatusStage(BaseStage[Any, Any]):
    """Keyed by orderId: write-through of the order's status. The rank is the version (PENDING 1 →
    PAID 2 → FULFILLED/CANCELED 3) and the state keeps the highest, so a redelivered or late event
    never moves an order back — not even once a finished order's key has expired."""

    name = "order_status"
    forwards = False

    def step(
        self, key: str, state: OrderStatusState | None, items: Sequence[Item[OrderEvent]]
    ) -> Stepped[OrderStatusState]:
        changed = False
        for item in items:  # Item(OrderCreated | OrderPaid | OrderFulfilled | OrderCanceled)
            status = STATUS_OF[type(item.value)]
            if state is not None and STATUS_RANK[status] <= state.rank:
                continue
            state = OrderStatusState(status.value, item.value.user_id, item.event_time)
            changed = True
        return Stepped(state, self.current(key, state) if changed and state is not None else [])

    def current(self, key: str, state: OrderStatusState) -> list[Write]:
        fields = {"status": state.status, "userId": state.user_id, "updatedAt": str(state.updated_at)}
        final = state.status in FINAL
        expire = state.updated_at + TERMINAL_LINGER_MS if final else None
        return [Upsert(f"order_status:{key}", state.rank, fields, expire)]  # HSET order_status:{orderId} …

    def dump(self, state: OrderStatusState) -> Any:
        return [state.status, state.user_id, state.updated_at]

    def load(self, data: Any) -> OrderStatusState:
        return OrderStatusState(*data)


def projection(settings: ServingCachesSettings) -> Projection:
    return Projection(
        NAME,
        (PRODUCT_UPDATED, *ORDER_EVENTS),
        (InvalidationStage(settings.floor_ttl_s * 1000), OrderStatusStage()),
        routes={e.name: 1 for e in ORDER_EVENTS},
        redis_keys=(FLOOR.format("*"), "order_status:*"),
    )
