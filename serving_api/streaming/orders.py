"""The order-status feed behind `/ws/orders`: each API worker tails the order event topics
itself (fan-out like the flash-sale feed) and hands every status change to the sockets of this
worker that follow the order or its owner. Messages a client has not acknowledged are kept in
Redis (`ws:unacked:{userId}`, a day) and sent again when it subscribes anew — on any worker."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from confluent_kafka import KafkaException

from serving_api.streaming.kafka import assign_ends, tail_consumer
from shopstream.domain import event_type
from shopstream.domain.envelope import epoch_ms
from shopstream.serde import AvroSerde

log = logging.getLogger("shopstream.ws")
STATUSES = {
    event_type(f"ecommerce.order.order.{kind}.v1").topic: status
    for kind, status in (("created", "PENDING"), ("paid", "PAID"), ("fulfilled", "FULFILLED"), ("canceled", "CANCELED"))
}
UNACKED = "ws:unacked:{}"
UNACKED_TTL_S = 86_400


@dataclass(frozen=True)
class StatusChange:
    message_id: str  # the event's id: the same on every worker, the key of acks
    order_id: str
    user_id: str
    status: str
    at: int  # epoch ms

    def frame(self) -> dict[str, Any]:
        return {"type": "status", "id": self.message_id, "orderId": self.order_id, "status": self.status,
                "at": self.at}  # fmt: skip


Listener = Callable[[StatusChange], None]


class OrderRouter:
    """In the event loop: which sessions follow which order or user. The feed hands each change
    to the loop once, and only the sessions that follow it get it (not every socket of the
    worker: ten thousand callbacks per event cost a hundred milliseconds)."""

    def __init__(self) -> None:
        self._by_order: dict[str, set[Any]] = {}
        self._by_user: dict[str, set[Any]] = {}

    def follow_order(self, session: Any, order_id: str) -> None:
        self._by_order.setdefault(order_id, set()).add(session)

    def unfollow_order(self, session: Any, order_id: str) -> None:
        followers = self._by_order.get(order_id)
        if followers is not None:
            followers.discard(session)
            if not followers:
                del self._by_order[order_id]

    def follow_user(self, session: Any, user_id: str) -> None:
        self._by_user.setdefault(user_id, set()).add(session)

    def forget(self, session: Any, orders: set[str], user_id: str) -> None:
        for order_id in orders:
            self.unfollow_order(session, order_id)
        followers = self._by_user.get(user_id)
        if followers is not None:
            followers.discard(session)
            if not followers:
                del self._by_user[user_id]

    def dispatch(self, change: StatusChange) -> None:
        for session in self._by_order.get(change.order_id, set()) | self._by_user.get(change.user_id, set()):
            session.deliver(change)  # never raises: a session that cannot keep up closes itself


class OrderFeed:
    def __init__(self, bootstrap: str, serde: AvroSerde) -> None:
        self.bootstrap, self.serde = bootstrap, serde
        self._listeners: set[tuple[asyncio.AbstractEventLoop, Listener]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="order-feed", daemon=True)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def listen(self, loop: asyncio.AbstractEventLoop, listener: Listener) -> Callable[[], None]:
        """Call `listener` (on `loop`) with every status change; returns the way to stop."""
        entry = (loop, listener)
        with self._lock:
            self._listeners.add(entry)

        def stop() -> None:
            with self._lock:
                self._listeners.discard(entry)

        return stop

    def _change(self, topic: str, value: bytes) -> StatusChange:
        return _decode_change(self.serde, topic, value)

    def _run(self) -> None:
        consumer = tail_consumer(self.bootstrap)
        try:
            while not self._stop.is_set() and not self._ready.is_set():
                try:
                    assign_ends(consumer, list(STATUSES))
                    self._ready.set()
                except (KafkaException, KeyError) as exc:
                    log.warning("order feed waiting for Kafka: %s", exc)
                    self._stop.wait(2)
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                try:
                    change = self._change(msg.topic(), msg.value())
                    with self._lock:
                        listeners = list(self._listeners)
                    for loop, listener in listeners:
                        loop.call_soon_threadsafe(listener, change)
                except Exception:  # one bad record or a registry hiccup must not end the feed
                    log.exception("order feed: record %s[%s]@%s skipped", msg.topic(), msg.partition(), msg.offset())
        except KafkaException:
            log.exception("order feed stopped")
        finally:
            consumer.close()


def _decode_change(serde: AvroSerde, topic: str, value: bytes) -> StatusChange:
    record = serde.decode(value)[1]
    p = record["payload"]
    return StatusChange(
        str(record["eventId"]), p["orderId"], p["userId"], STATUSES[topic], epoch_ms(record["occurredAt"])
    )


async def remember(cache: aioredis.Redis, user_id: str, change: StatusChange) -> None:
    """Keep a sent message until the client acknowledges it."""
    key = UNACKED.format(user_id)
    async with cache.pipeline(transaction=True) as pipe:
        pipe.hset(key, change.message_id, json.dumps(change.frame(), separators=(",", ":")))
        pipe.expire(key, UNACKED_TTL_S)
        await pipe.execute()


async def acknowledge(cache: aioredis.Redis, user_id: str, message_id: str) -> bool:
    return bool(await cache.hdel(UNACKED.format(user_id), message_id))


async def unacknowledged(cache: aioredis.Redis, user_id: str) -> list[dict[str, Any]]:
    """The user's unacknowledged messages, oldest first."""
    raw = await cache.hvals(UNACKED.format(user_id))
    return sorted((json.loads(v) for v in raw), key=lambda f: (f["at"], f["id"]))
