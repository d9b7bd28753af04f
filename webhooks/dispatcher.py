"""`python -m webhooks.dispatcher`: POSTs the deliveries of the work queue to partners.

Per delivery message (attempt n, from the `x-attempt` header):

    sign + POST ─ 2xx ──────────────→ record DELIVERED                           → ack
               └ error/non-2xx ─ n ≤ len(schedule) → record RETRY, publish to the delay queue
                                                     before attempt n+1 (confirmed)  → ack
                                └ n is the last ──→ record DEAD + delivery.failed (outbox, one
                                                     transaction), publish to the DLQ  → ack

The message is acknowledged only once its next step is durable (Postgres committed, the broker
confirmed the re-publish), so a dispatcher stopped or killed at any point leaves every delivery
in a queue: at least once, never lost. A delivery that already ended (a duplicate of the
fan-out's) is not attempted again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from prometheus_client import start_http_server

from shopstream import __version__
from shopstream.domain import event_type
from shopstream.runtime.context import Context
from shopstream.runtime.postgres import create_pool, unit_of_work
from shopstream.runtime.telemetry import setup_logging
from shopstream.serde import AvroSerde, RegistryClient
from webhooks import broker, metrics
from webhooks.deliveries import Delivery
from webhooks.schedule import RetrySchedule
from webhooks.settings import WebhookDispatcherSettings
from webhooks.signature import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from webhooks.subscriptions import Endpoint, endpoint

log = logging.getLogger("shopstream.webhooks.dispatcher")
FAILED = event_type("ecommerce.webhook.delivery.failed.v1")
PRODUCER = "partner-webhook-dispatcher"
INSERT_ATTEMPT = """
INSERT INTO webhook_delivery_attempts
    (delivery_id, subscription_id, event_id, event_type, attempt, outcome, status_code, error, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (delivery_id) WHERE outcome IN ('DELIVERED', 'DEAD') DO NOTHING
RETURNING id
"""
FINAL_ATTEMPT = """
SELECT attempt, outcome FROM webhook_delivery_attempts
WHERE delivery_id = $1 AND outcome IN ('DELIVERED', 'DEAD')
"""


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None  # None when delivered
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.error is None


async def post(http: httpx.AsyncClient, target: Endpoint, delivery: Delivery, attempt: int) -> AttemptResult:
    """One signed POST of the delivery's body; a 2xx answer is a delivery, anything else a failure."""
    body = delivery.body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"shopstream-webhooks/{__version__}",
        DELIVERY_HEADER: delivery.delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(target.secret, timestamp, body),
        EVENT_TYPE_HEADER: delivery.event_type,
        ATTEMPT_HEADER: str(attempt),
    }
    started = time.perf_counter()
    status: int | None
    error: str | None
    try:
        response = await http.post(target.target_url, content=body, headers=headers)
    except Exception as exc:  # any failure to deliver is a failed attempt (an odd URL included), never a requeue loop
        status, error = None, f"{type(exc).__name__}: {exc}"[:500]
    else:
        status = response.status_code
        error = None if 200 <= status < 300 else f"HTTP {status}"
    elapsed = time.perf_counter() - started
    metrics.LATENCY.observe(elapsed)
    return AttemptResult(status, error, round(elapsed * 1000))


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        serde: AvroSerde,
        http: httpx.AsyncClient,
        publish_to: AbstractExchange,
        schedule: RetrySchedule,
    ) -> None:
        self.pool, self.serde, self.http = pool, serde, http
        self.queues = publish_to  # the default exchange, on a channel with publisher confirms
        self.schedule = schedule
        self.in_flight: set[asyncio.Task[None]] = set()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.in_flight.add(task)
        try:
            await self.handle(message)
        except Exception:
            # Postgres or the broker failed us: the attempt is made again later (at least once)
            log.exception("delivery %s not settled; requeued", message.message_id)
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):  # a closed channel requeues it anyway
                await message.nack(requeue=True)
        finally:
            self.in_flight.discard(task)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            delivery = Delivery.from_message(message.body)
        except ValueError as exc:
            log.error("unreadable message %s to the DLQ: %s", message.message_id, exc)
            await self._publish(aio_pika.Message(message.body, headers={"x-error": str(exc)[:200]}), self.schedule.dlq)
            metrics.DELIVERIES_DROPPED.labels("unreadable").inc()
            await message.ack()
            return
        attempt = int(str((message.headers or {}).get(broker.ATTEMPT, 1)))
        async with self.pool.acquire() as conn:
            final = await conn.fetchrow(FINAL_ATTEMPT, delivery.delivery_id)
            target = await endpoint(conn, delivery.subscription_id)
        if final is not None:
            if final["outcome"] == "DEAD" and final["attempt"] == attempt:
                # stopped between the commit and the DLQ publish last time: finish that step
                await self._publish(
                    self._dead_letter(delivery, attempt, "dead-lettered again after a restart"), self.schedule.dlq
                )
            metrics.DELIVERIES_DROPPED.labels("finished").inc()
            await message.ack()
            return
        if target is None or not target.active:
            log.info("delivery %s dropped: subscription %s deleted", delivery.delivery_id, delivery.subscription_id)
            metrics.DELIVERIES_DROPPED.labels("unsubscribed").inc()
            await message.ack()
            return
        if attempt > 1:
            metrics.RETRY_ATTEMPTS.inc()
        result = await post(self.http, target, delivery, attempt)
        if result.delivered:
            await self._record(delivery, attempt, "DELIVERED", result)
        elif (wait_queue := self.schedule.after_failure(attempt)) is not None:
            await self._record(delivery, attempt, "RETRY", result)
            await self._publish(broker.message(delivery, attempt + 1), wait_queue)
        else:
            await self._give_up(delivery, attempt, target, result)
        await message.ack()

    async def _record(self, delivery: Delivery, attempt: int, outcome: str, result: AttemptResult) -> None:
        async with unit_of_work(self.pool) as conn:
            await self._insert(conn, delivery, attempt, outcome, result)
        metrics.ATTEMPTS.labels(outcome.lower()).inc()

    async def _give_up(self, delivery: Delivery, attempt: int, target: Endpoint, result: AttemptResult) -> None:
        """The last attempt failed: DEAD and webhook.delivery.failed in one transaction, then the DLQ."""
        async with unit_of_work(self.pool) as conn:
            if await self._insert(conn, delivery, attempt, "DEAD", result):
                ctx = Context(self.serde, PRODUCER, delivery.correlation_id, delivery.trace_id)
                payload = {
                    "subscriptionId": delivery.subscription_id,
                    "deliveryId": delivery.delivery_id,
                    "eventId": delivery.event_id,
                    "targetUrl": target.target_url,
                    "attempts": attempt,
                    "lastStatusCode": result.status_code,
                    "lastError": result.error or "",
                }
                await ctx.publish(conn, FAILED, payload)
        await self._publish(self._dead_letter(delivery, attempt, result.error or ""), self.schedule.dlq)
        metrics.ATTEMPTS.labels("dead").inc()
        metrics.DELIVERIES_DEAD_LETTERED.inc()
        log.warning(
            "delivery %s dead-lettered after %d attempts: %s",
            delivery.delivery_id,
            attempt,
            result.error,
            extra={"eventType": delivery.event_type, "correlationId": delivery.correlation_id},
        )

    def _dead_letter(self, delivery: Delivery, attempt: int, error: str) -> aio_pika.Message:
        return broker.message(delivery, attempt, **{"x-last-error": error[:200]})

    async def _insert(
        self, conn: asyncpg.Connection, delivery: Delivery, attempt: int, outcome: str, result: AttemptResult
    ) -> bool:
        """Record one attempt; False when the delivery had already ended (a duplicate's attempt)."""
        row = await conn.fetchrow(
            INSERT_ATTEMPT,
            delivery.delivery_id,
            delivery.subscription_id,
            delivery.event_id,
            delivery.event_type,
            attempt,
            outcome,
            result.status_code,
            result.error,
            result.duration_ms,
        )
        return row is not None

    async def _publish(self, message: aio_pika.Message, queue: str) -> None:
        # returns once the broker confirmed it (the channel has publisher confirms)
        await self.queues.publish(message, routing_key=queue)

    async def drain(self, timeout: float) -> None:
        """Wait for the deliveries being worked on to settle."""
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=timeout)


async def run(settings: WebhookDispatcherSettings) -> None:
    schedule = RetrySchedule(settings.retry_schedule, settings.queue_prefix)
    registry = RegistryClient(settings.registry.url)
    serde = AvroSerde(registry)
    pool = await create_pool(settings.postgres.dsn.get_secret_value(), settings.postgres.pool_size)
    http = httpx.AsyncClient(
        timeout=settings.request_timeout,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency),
    )
    connection = await broker.connect(settings.rabbitmq.url.get_secret_value())
    publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
    await broker.declare(publishing, schedule)
    consuming = await connection.channel()
    await consuming.set_qos(prefetch_count=settings.concurrency)
    dispatcher = Dispatcher(pool, serde, http, publishing.default_exchange, schedule)
    queue = await consuming.get_queue(schedule.work_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.metrics.port:
        start_http_server(settings.metrics.port, settings.metrics.host)
    tag = await queue.consume(dispatcher.on_message)
    metrics.CONSUMING.set(1)
    # the robust connection reconnects (and consumes again) by itself; health follows it
    connection.close_callbacks.add(lambda *_: metrics.CONSUMING.set(0))
    connection.reconnect_callbacks.add(lambda *_: metrics.CONSUMING.set(1))
    log.info("dispatching %s, retries after %s s, then %s", schedule.work_queue, schedule.waits, schedule.dlq)
    try:
        await stop.wait()
    finally:
        # no new deliveries; those in hand settle; the unstarted prefetched ones go back to the queue
        metrics.CONSUMING.set(0)
        await queue.cancel(tag)
        await dispatcher.drain(settings.request_timeout + 10)
        await connection.close()
        await http.aclose()
        await pool.close()
        registry.close()


def main() -> None:
    setup_logging()
    asyncio.run(run(WebhookDispatcherSettings()))


if __name__ == "__main__":
    main()
