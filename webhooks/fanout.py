"""`python -m webhooks.fanout`: order and flash-sale events from Kafka become webhook
deliveries in RabbitMQ, one per matching subscription.

At least once, nothing lost: a batch of records is decoded, matched against the active
subscriptions, every delivery is published persistent and confirmed by the broker, and only then
are the batch's Kafka offsets committed. A crash in between re-reads the batch; the re-made
deliveries carry the same delivery ids (partners dedup on them; the dispatcher skips a delivery
that already ended)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Any

import asyncpg
from aio_pika.abc import AbstractExchange
from confluent_kafka import Consumer, Message

from shopstream.runtime.postgres import create_pool
from shopstream.runtime.telemetry import setup_logging
from shopstream.serde import AvroSerde, RegistryClient, SerdeError
from webhooks import broker
from webhooks.deliveries import SUBSCRIBABLE, Delivery
from webhooks.schedule import RetrySchedule
from webhooks.settings import WebhookFanoutSettings
from webhooks.subscriptions import subscribers

log = logging.getLogger("shopstream.webhooks.fanout")
BATCH = 500


def decode_batch(serde: AvroSerde, records: Sequence[Message]) -> list[dict[str, Any]]:
    """The events of a batch; records that are not events of ours are logged and skipped."""
    events = []
    for rec in records:
        if rec.error() is not None:
            log.warning("kafka: %s", rec.error())
            continue
        try:
            _, event = serde.decode(rec.value())
        except SerdeError as exc:
            log.warning("skipping undecodable record %s[%s]@%s: %s", rec.topic(), rec.partition(), rec.offset(), exc)
            continue
        if event.get("eventType") in SUBSCRIBABLE:
            events.append(event)
    return events


async def fan_out(pool: asyncpg.Pool, work: AbstractExchange, events: list[dict[str, Any]]) -> int:
    """Publish one delivery per (event, matching subscription), each confirmed; returns how many."""
    if not events:
        return 0
    async with pool.acquire() as conn:
        by_type = await subscribers(conn, sorted({e["eventType"] for e in events}))
    deliveries = [Delivery.of(sub, event) for event in events for sub in by_type[event["eventType"]]]
    # with publisher confirms, each publish returns once the broker has the message (on disk)
    await asyncio.gather(*(work.publish(broker.message(d, 1), routing_key=broker.ROUTING_KEY) for d in deliveries))
    return len(deliveries)


async def run(settings: WebhookFanoutSettings) -> None:
    schedule = RetrySchedule(settings.retry_schedule, settings.queue_prefix)
    registry = RegistryClient(settings.registry.url)
    serde = AvroSerde(registry)
    pool = await create_pool(settings.postgres.dsn.get_secret_value(), settings.postgres.pool_size)
    connection = await broker.connect(settings.rabbitmq.url.get_secret_value())
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    work = await broker.declare(channel, schedule)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": settings.consumer_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    topics = [settings.topic_prefix + name for name in SUBSCRIBABLE]
    consumer.subscribe(topics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("fan-out of %s to %s", ", ".join(topics), schedule.work_exchange)
    try:
        while not stop.is_set():
            records = await asyncio.to_thread(consumer.consume, BATCH, 0.5)
            if not records:
                continue
            queued = await fan_out(pool, work, decode_batch(serde, records))
            await asyncio.to_thread(consumer.commit, asynchronous=False)
            if queued:
                log.info("queued %d deliveries from %d records", queued, len(records))
    finally:
        await asyncio.to_thread(consumer.close)
        await connection.close()
        await pool.close()
        registry.close()


def main() -> None:
    setup_logging()
    asyncio.run(run(WebhookFanoutSettings()))


if __name__ == "__main__":
    main()
