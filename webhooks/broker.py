"""The RabbitMQ side of the retry schedule, declared (idempotently) by both processes:

    <prefix>.work (direct exchange) --"deliver"--> <prefix>.work (queue) --> dispatcher
    dispatcher --failed attempt n--> <prefix>.retry.<wait n> (queue, x-message-ttl = wait n,
                                      x-dead-letter-exchange = <prefix>.work) --TTL--> back to work
    dispatcher --last attempt failed--> <prefix>.dlq (queue)

Everything durable, messages persistent, publishes confirmed by the broker: a delivery lives in
exactly one queue at any time it is not in a dispatcher's hands, so a restart loses nothing."""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from webhooks.deliveries import Delivery
from webhooks.schedule import RetrySchedule

ROUTING_KEY = "deliver"
ATTEMPT = "x-attempt"  # header: the number of the attempt the message is waiting for


async def connect(url: str) -> AbstractRobustConnection:
    return await aio_pika.connect_robust(url, client_properties={"connection_name": "partner-webhook-dispatcher"})


async def declare(channel: AbstractChannel, schedule: RetrySchedule) -> AbstractExchange:
    """Declare the exchange and queues of `schedule`; returns the work exchange."""
    work = await channel.declare_exchange(schedule.work_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(schedule.work_queue, durable=True)
    await queue.bind(work, ROUTING_KEY)
    for name, ttl_ms in schedule.delay_queues:
        await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-message-ttl": ttl_ms,
                "x-dead-letter-exchange": schedule.work_exchange,
                "x-dead-letter-routing-key": ROUTING_KEY,
            },
        )
    await channel.declare_queue(schedule.dlq, durable=True)
    return work


def message(delivery: Delivery, attempt: int, **headers: Any) -> aio_pika.Message:
    return aio_pika.Message(
        delivery.to_message(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=delivery.delivery_id,
        correlation_id=delivery.correlation_id,
        headers={ATTEMPT: attempt, **headers},
    )
