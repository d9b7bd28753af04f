"""The flash-sale feed behind `/sse/flash-sales`: each API worker tails the flash_sale.started
and flash_sale.ended topics itself (a consumer of its own, no group), so every worker's clients
get every event — fan-out without another broker. An event's SSE id is the feed's position after
it: the next offset of each partition of both topics ("s0.12-s1.5-s2.9-e0.3-e1.0-e2.4"). A client
that reconnects with Last-Event-ID gets what it missed read back from Kafka from there, then the
live events; the log is the buffer."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from serving_api.streaming.kafka import assign_ends, tail_consumer
from shopstream.domain import event_type
from shopstream.serde import AvroSerde, SerdeError

log = logging.getLogger("shopstream.sse")
TOPICS = {
    "s": event_type("ecommerce.pricing.flash_sale.started.v1").topic,
    "e": event_type("ecommerce.pricing.flash_sale.ended.v1").topic,
}
KINDS = {"s": "flash_sale.started", "e": "flash_sale.ended"}
Position = dict[tuple[str, int], int]  # (topic letter, partition) → next offset
MAX_READ_BACK = 1_000  # a client further behind gets a `resync` event instead


def encode_position(position: Position) -> str:
    return "-".join(f"{t}{p}.{o}" for (t, p), o in sorted(position.items()))


def decode_position(text: str) -> Position:
    """A Last-Event-ID back into a position; ValueError when it is not one of ours."""
    position: Position = {}
    for part in text.strip().split("-"):
        head, _, offset = part.partition(".")
        if len(head) < 2 or head[0] not in TOPICS or not head[1:].isdigit() or not offset.isdigit():
            raise ValueError(f"not a flash-sale event id: {text!r}")
        position[(head[0], int(head[1:]))] = int(offset)
    return position


@dataclass(frozen=True)
class FeedEvent:
    topic: str  # "s" | "e"
    partition: int
    offset: int
    kind: str
    data: dict[str, Any]


def _data(record: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value) if isinstance(value, uuid.UUID) else value

    return {"eventId": plain(record["eventId"]), "occurredAt": plain(record["occurredAt"]),
            **{k: plain(v) for k, v in record["payload"].items()}}  # fmt: skip


class FlashSaleFeed:
    def __init__(self, bootstrap: str, serde: AvroSerde) -> None:
        self.bootstrap, self.serde = bootstrap, serde
        self.position: Position = {}
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[FeedEvent | None]]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flash-sale-feed", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        """Start tailing in the background; `ready` once the topics' ends are known."""
        self._thread.start()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        consumer = tail_consumer(self.bootstrap)
        try:
            while not self._stop.is_set() and not self._ready.is_set():
                try:
                    self._assign_ends(consumer)
                except (KafkaException, KeyError) as exc:  # Kafka not up yet, or no topics yet
                    log.warning("flash-sale feed waiting for Kafka: %s", exc)
                    self._stop.wait(2)
            letters = {topic: letter for letter, topic in TOPICS.items()}
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                try:
                    event = self._event(letters[msg.topic()], msg.partition(), msg.offset(), msg.value())
                    with self._lock:
                        self.position[(event.topic, event.partition)] = event.offset + 1
                        subscribers = list(self._subscribers)
                    for loop, queue in subscribers:
                        loop.call_soon_threadsafe(_offer, queue, event)
                except Exception:  # one bad record or a registry hiccup must not end the feed
                    log.exception("flash-sale feed: record %s[%s]@%s skipped", msg.topic(), msg.partition(),
                                  msg.offset())  # fmt: skip
        except KafkaException:
            log.exception("flash-sale feed stopped")
        finally:
            consumer.close()

    def _assign_ends(self, consumer: Consumer) -> None:
        ends = assign_ends(consumer, list(TOPICS.values()))
        letters = {topic: letter for letter, topic in TOPICS.items()}
        self.position.update({(letters[t], p): high for (t, p), high in ends.items()})
        self._ready.set()

    def _event(self, letter: str, partition: int, offset: int, value: bytes) -> FeedEvent:
        try:
            data = _data(self.serde.decode(value)[1])
        except SerdeError as exc:  # a record we cannot read is announced as such, not dropped silently
            data = {"error": f"undecodable record: {exc}"}
        return FeedEvent(letter, partition, offset, KINDS[letter], data)

    async def events(self, since: Position | None) -> AsyncIterator[tuple[str, FeedEvent]]:
        """(SSE id, event): those after `since` read back from Kafka, then live ones."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[FeedEvent | None] = asyncio.Queue(maxsize=1_000)
        with self._lock:
            self._subscribers.add((loop, queue))
            now = dict(self.position)
        try:
            position = dict(now if since is None else {**now, **since})
            if since is not None:
                missed, complete = await asyncio.to_thread(self._read_back, since, now)
                for event in missed:
                    position[(event.topic, event.partition)] = event.offset + 1
                    yield encode_position(position), event
                if not complete:  # too far back to replay: the client starts over from the list
                    position = dict(now)
                    detail = f"more than {MAX_READ_BACK} events missed; reload GET /api/v1/flash-sales"
                    yield encode_position(position), FeedEvent("s", -1, -1, "resync", {"detail": detail})
            while True:
                live = await queue.get()
                if live is None:  # this client fell 1,000 events behind: it resumes with its id
                    return
                if live.offset < position.get((live.topic, live.partition), 0):
                    continue  # already sent from the read-back
                position[(live.topic, live.partition)] = live.offset + 1
                yield encode_position(position), live
        finally:
            with self._lock:
                self._subscribers.discard((loop, queue))

    def _read_back(self, since: Position, until: Position) -> tuple[list[FeedEvent], bool]:
        """The events between two positions, from Kafka, in offset order per partition, and
        whether that is all of them (at most MAX_READ_BACK are read back)."""
        wanted = {tp: (since.get(tp, until[tp]), until[tp]) for tp in until}
        wanted = {tp: (a, b) for tp, (a, b) in wanted.items() if a < b}
        if not wanted:
            return [], True
        if sum(b - a for a, b in wanted.values()) > MAX_READ_BACK:
            return [], False
        consumer = tail_consumer(self.bootstrap)
        out: list[FeedEvent] = []
        try:
            consumer.assign([TopicPartition(TOPICS[t], p, a) for (t, p), (a, _) in wanted.items()])
            letters = {topic: letter for letter, topic in TOPICS.items()}
            left = {tp: b for tp, (_, b) in wanted.items()}
            quiet = 0  # polls in a row with nothing: what is left is not there to read
            while left and quiet < 20:
                msg = consumer.poll(0.1)
                if msg is None or msg.error() is not None:
                    quiet += 1
                    continue
                quiet = 0
                tp = (letters[msg.topic()], msg.partition())
                if tp in left and msg.offset() < left[tp]:
                    out.append(self._event(tp[0], tp[1], msg.offset(), msg.value()))
                if tp in left and msg.offset() + 1 >= left[tp]:
                    del left[tp]
        finally:
            consumer.close()
        return out, True


def _offer(queue: asyncio.Queue[FeedEvent | None], event: FeedEvent) -> None:
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)


def sse_frame(event_id: str, event: FeedEvent) -> str:
    return f"id: {event_id}\nevent: {event.kind}\ndata: {json.dumps(event.data, separators=(',', ':'))}\n\n"
