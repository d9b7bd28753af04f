"""serving_caches: the serving API's caches, kept only by consuming events (seed §7, §13: no side
channel from the writers):

- product.updated → drop `product:{id}` and `gql:product:{id}`, and leave the product's version
  as their floor so that a read that raced the update cannot put the older copy back
  (`serving_api.services.product_cache`);
- order events → `order_status:{orderId}` (hash: status, userId, updatedAt), written through on
  each event and removed once the order is fulfilled or canceled (it expires a minute after)."""

from __future__ import annotations

from typing import Any

from shopstream.domain import EventType, event_type
from shopstream.domain.envelope import epoch_ms
from streams.runtime import Dataflow, Inbound, Invalidation, KeyState, Projected, RedisWrite
from streams.settings import ServingCachesSettings

NAME = "serving_caches"
SUMMARY = "product.updated → drops product:{id}, gql:product:{id}; order events → order_status:{orderId}"
PRODUCT_UPDATED = event_type("ecommerce.product.product.updated.v1")
FLOOR, ENTRIES = "product:{}:floor", ("product:{}", "gql:product:{}")
ORDER_EVENTS = {
    event_type(f"ecommerce.order.order.{kind}.v1"): (status, rank)
    for kind, status, rank in (
        ("created", "PENDING", 1),
        ("paid", "PAID", 2),
        ("fulfilled", "FULFILLED", 3),
        ("canceled", "CANCELED", 3),
    )
}
TERMINAL_LINGER_MS = 60_000  # a finished order's status stays this long, for late readers


def parse(event: dict[str, Any]) -> tuple[str, int]:
    """(productId, its version); contract 1.0 records carry none (0): they predate every cache
    entry written with a version, so they change nothing."""
    p = event["payload"]
    return p["productId"], p.get("version") or 0


def invalidation_step(ttl_ms: int) -> Any:
    def step(inbound: Inbound, state: KeyState) -> Projected | None:
        """The product's cache entries to drop, once per version (redeliveries change nothing)."""
        product_id, version = inbound.value
        if not version or version <= state.get("version", 0):
            return None
        state.set("version", version)
        entries = tuple(e.format(product_id) for e in ENTRIES)
        return Projected(None, Invalidation(FLOOR.format(product_id), version, entries, ttl_ms))

    return step


def order_parser(event: EventType) -> Any:
    status, rank = ORDER_EVENTS[event]

    def parse_order(record: dict[str, Any]) -> tuple[str, str, str, int, int]:
        p = record["payload"]
        return p["orderId"], p["userId"], status, rank, epoch_ms(record["occurredAt"])

    return parse_order


def order_status(inbound: Inbound, state: KeyState) -> Projected | None:
    """Write-through of the order's status. Its rank is the version (PENDING 1 → PAID 2 →
    FULFILLED/CANCELED 3), and the state remembers the highest, so a redelivered or late event
    never moves an order back — not even once a finished order's key has expired."""
    order_id, user_id, status, rank, at = inbound.value
    if rank <= state.get("rank", 0):
        return None
    state.set("rank", rank)
    fields = {"status": status, "userId": user_id, "updatedAt": str(at)}
    expire = at + TERMINAL_LINGER_MS if rank == 3 else None
    return Projected(None, RedisWrite(f"order_status:{order_id}", rank, fields, expire))


def build(flow: Dataflow) -> None:
    settings = flow.settings
    assert isinstance(settings, ServingCachesSettings)
    products = flow.source(PRODUCT_UPDATED, parse)  # Inbound((productId, version)), keyed by productId
    products = products.apply(invalidation_step(settings.floor_ttl_s * 1000), stateful=True)  # Projected | None
    products = products.filter(lambda p: p is not None)
    products.sink(flow.redis_sink())  # SET product:{id}:floor version; DEL product:{id} gql:product:{id}

    orders = None
    for event in ORDER_EVENTS:
        source = flow.source(event, order_parser(event))  # Inbound((orderId, userId, status, rank, at))
        orders = source if orders is None else orders.concat(source)
    assert orders is not None
    orders = orders.apply(order_status, stateful=True).filter(lambda p: p is not None)
    orders.sink(flow.redis_sink())  # HSET order_status:{orderId} status userId updatedAt


SETTINGS = ServingCachesSettings
