"""The IoT stock ingest: MQTT `iot/inventory/{sku}/delta` → validated → a stock adjustment through
the writers' API (so it reaches Kafka as stock.adjusted through the outbox), or → the dead-letter
topic with its reason.

Delivery: a persistent MQTT session (clean_session=False, QoS 1) on a broker that persists it,
and a message is acknowledged (PUBACK) only once its delta is applied or dead-lettered. So a
broker restart or an ingest crash loses nothing: what was not acknowledged is delivered again, and
the adjustment's idempotency key (`iot:{deviceId}:{sku}:{seq}`) makes the API apply it once.

Resilience (seed §8, buffer and batch after reconnect): messages wait in one in-order lane per
SKU; lanes drain concurrently (`concurrency` adjustments in flight). While the API is unavailable
every lane retries with exponential backoff and keeps its messages; the broker holds back what is
beyond its in-flight window. When the API (or the broker, after a restart) is back, the backlog
drains in parallel batches across SKUs, each SKU's deltas still in order."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from ingest.payload import Rejected, StockDelta, parse_delta
from ingest.settings import IotIngestSettings
from ingest.writer import ApiUnavailable, StockWriter
from shopstream.runtime.dead_letters import DeadLetter, DeadLetterFailed, DeadLetterWriter

log = logging.getLogger(__name__)
SOURCE = "iot_ingest"  # dlq.dataflow of its dead letters
UNKNOWN_SKU = "unknown-sku"
REJECTED = "rejected"  # valid, but the writers refuse it (e.g. on hand would drop below reserved)
BAD_LANE = ""  # bad payloads have no SKU: their own lane


@dataclass(frozen=True)
class Inbound:
    mid: int
    qos: int
    # the MQTT connection it came on: an acknowledgement only goes back on the same one
    session: int
    topic: str
    payload: bytes


@dataclass
class Tally:
    received: int = 0
    applied: int = 0
    # deliveries the API had already applied (QoS 1 duplicates, redeliveries after a reconnect)
    replayed: int = 0
    # applied without a message id: a redelivery of such a message would apply again
    unkeyed: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    connects: int = 0
    connected: bool = False
    session_present: bool = False

    def as_json(self, buffered: int, retrying: int = 0) -> dict[str, object]:
        return {
            "connected": self.connected,
            "sessionPresent": self.session_present,
            "connects": self.connects,
            "received": self.received,
            "applied": self.applied,
            "replayed": self.replayed,
            "unkeyed": self.unkeyed,
            "deadLetters": dict(self.dead_letters),
            "retries": self.retries,
            "buffered": buffered,
            "retrying": retrying,
        }


class StockIngest:
    def __init__(self, settings: IotIngestSettings, writer: StockWriter, dead_letters: DeadLetterWriter) -> None:
        self.settings = settings
        self.writer = writer
        self.dead_letters = dead_letters
        self.tally = Tally()
        self._lanes: dict[str, deque[tuple[Inbound, StockDelta | Rejected]]] = {}
        self._draining: set[asyncio.Task[None]] = set()
        self._retrying: set[str] = set()  # lanes in a retry's backoff
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._session = 0  # written by the MQTT thread only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        # an exception in a callback must not end the network thread (no reconnect after it):
        # paho logs it through on_log and goes on
        self.client.suppress_exceptions = True
        self.client.on_log = self._on_log
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    @property
    def buffered(self) -> int:
        return sum(len(lane) for lane in list(self._lanes.values()))

    @property
    def retrying(self) -> int:
        """Lanes whose first message waits for a retry (the API or the dead-letter topic away)."""
        return len(self._retrying)

    # --- the MQTT thread: hand everything to the event loop ------------------------------------
    def _on_log(self, _c: mqtt.Client, _u: object, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            log.error("MQTT client: %s", text)

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: object,
    ) -> None:
        if reason.is_failure:
            log.error("MQTT connect refused: %s", reason)
            return
        self._session += 1
        client.subscribe(self.settings.topic_filter, qos=1)
        self.tally.connects += 1
        self.tally.connected, self.tally.session_present = True, bool(flags.session_present)
        log.info(
            "MQTT connected to %s:%s (session %s), subscribed to %s",
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            "resumed" if flags.session_present else "new",
            self.settings.topic_filter,
        )

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: mqtt.DisconnectFlags, reason: ReasonCode, _p: object
    ) -> None:
        self._session += 1  # acknowledgements of what this connection delivered are void now
        self.tally.connected = False
        log.warning("MQTT disconnected (%s); reconnecting, %d message(s) buffered", reason, self.buffered)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        item = Inbound(msg.mid, msg.qos, self._session, msg.topic, bytes(msg.payload))
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._received, item)

    # --- the event loop --------------------------------------------------------------------------
    def _received(self, item: Inbound) -> None:
        if self._stopping:
            return  # not acknowledged: the broker delivers it again to the next start
        self.tally.received += 1
        parsed = parse_delta(item.topic, item.payload)
        lane = parsed.sku if isinstance(parsed, StockDelta) else BAD_LANE
        if lane in self._lanes:
            self._lanes[lane].append((item, parsed))
            return
        self._lanes[lane] = deque([(item, parsed)])
        task = asyncio.get_running_loop().create_task(self._drain(lane), name=f"lane {lane}")
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, lane: str) -> None:
        """One SKU's messages, one at a time, in arrival order, until the lane is empty."""
        queue = self._lanes[lane]
        try:
            while queue and not self._stopping:
                item, parsed = queue[0]
                async with self._slots:
                    await self._settle(lane, item, parsed)
                queue.popleft()
                self._ack(item)
        finally:
            del self._lanes[lane]

    async def _settle(self, lane: str, item: Inbound, parsed: StockDelta | Rejected) -> None:
        """Apply or dead-letter one message; retries (without limit) what is not its fault."""
        delay = self.settings.retry_min_s
        try:
            while True:
                try:
                    await self._settle_once(item, parsed)
                    return
                except (ApiUnavailable, DeadLetterFailed) as exc:
                    self.tally.retries += 1
                    self._retrying.add(lane)
                    log.warning("%s; retrying %s in %.1fs", exc, item.topic, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.retry_max_s)
                except Exception as exc:  # an answer we cannot read: the message, not the lane, gives up
                    log.exception("unexpected failure settling %s", item.topic)
                    await self._dead_letter_or_retry(item, f"{type(exc).__name__}: {exc}")
                    return
        finally:
            self._retrying.discard(lane)

    async def _dead_letter_or_retry(self, item: Inbound, detail: str) -> None:
        """Dead-letter a message whose settling failed unexpectedly (reason `api-error`), so that
        its lane goes on; until the dead-letter topic takes it, keep trying (it must not be lost)."""
        delay = self.settings.retry_min_s
        while True:
            try:
                await self._dead_letter(item, item.topic, "api-error", detail[:500])
                return
            except Exception:
                log.exception("dead letter of %s failed; retrying in %.1fs", item.topic, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)

    async def _settle_once(self, item: Inbound, parsed: StockDelta | Rejected) -> None:
        if isinstance(parsed, Rejected):
            await self._dead_letter(item, item.topic, parsed.reason, parsed.detail)
            return
        written = await self.writer.adjust(parsed)
        if written.outcome == "applied":
            self.tally.applied += 1
            self.tally.unkeyed += parsed.idempotency_key is None
        elif written.outcome == "replayed":
            self.tally.replayed += 1
        else:
            await self._dead_letter(item, parsed.sku, written.outcome, written.detail)

    async def _dead_letter(self, item: Inbound, key: str, reason: str, detail: str) -> None:
        letter = DeadLetter(SOURCE, reason, item.payload, key.encode(), detail=detail, extra={"mqtt.topic": item.topic})
        await self.dead_letters.send(letter)
        self.tally.dead_letters[reason] += 1

    def _ack(self, item: Inbound) -> None:
        # after a reconnect the broker delivers an unacknowledged message again (and that copy is
        # acknowledged): a late acknowledgement on the new connection could name another message
        if item.qos > 0 and item.session == self._session and self.tally.connected:
            self.client.ack(item.mid, item.qos)

    # --- lifecycle ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; then finish what is in hand (briefly) and disconnect.
        Anything not acknowledged stays in the broker's session for the next start."""
        self._loop = asyncio.get_running_loop()
        self.client.connect_async(self.settings.mqtt.host, self.settings.mqtt.port, self.settings.keepalive_s)
        self.client.loop_start()
        try:
            await stop.wait()
            # no unsubscribe: the session's subscription must outlive us (the broker queues for it)
            self._stopping = True
            if self._draining:
                await asyncio.wait(set(self._draining), timeout=5)
        finally:
            for task in list(self._draining):
                task.cancel()
            self.client.disconnect()
            self.client.loop_stop()
