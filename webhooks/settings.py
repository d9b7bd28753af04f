"""Settings of the partner-webhook processes, one class each: the Kafka fan-out
(`SHOPSTREAM_WEBHOOK_FANOUT__*`) and the dispatcher (`SHOPSTREAM_WEBHOOK_DISPATCHER__*`), on a base
with what both declare alike (the queues and the retry schedule: give both the same, as the stack
does). The retry schedule defaults to the seed's (domain spec §4, §8); tests run a compressed one
(`SHOPSTREAM_WEBHOOK_DISPATCHER__RETRY_SCHEDULE='[0.5, 1, 1.5, 2, 2.5]'`)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shopstream.runtime.settings import DeployableSettings, Kafka, Postgres, RabbitMQ, Registry, WebhookMetricsEndpoint

# 30 s, 2 m, 5 m, 15 m, 30 m: the waits before the 1st..5th retry
SEED_SCHEDULE: tuple[float, ...] = (30, 120, 300, 900, 1800)


class WebhookPostgres(Postgres):
    """A webhook worker's pool: five connections are plenty (a nested model's defaults are its
    class's, whichever of its fields the environment sets)."""

    pool_size: int = Field(default=5, ge=1)


class WebhookSettings(DeployableSettings):
    """What both processes need; each process's class below has its own prefix."""

    postgres: WebhookPostgres = WebhookPostgres()
    registry: Registry = Registry()
    rabbitmq: RabbitMQ = RabbitMQ()
    # seconds to wait before each retry; a delivery gets 1 + len(schedule) attempts, then the DLQ
    retry_schedule: tuple[float, ...] = SEED_SCHEDULE
    # names of the exchanges and queues: <prefix>.work, <prefix>.retry.<delay>, <prefix>.dlq
    queue_prefix: str = "webhooks"

    @field_validator("retry_schedule")
    @classmethod
    def _positive_waits(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(wait <= 0 for wait in value):
            raise ValueError("every wait of the retry schedule (…__RETRY_SCHEDULE) must be > 0 seconds")
        return value


class WebhookFanoutSettings(WebhookSettings):
    """`python -m webhooks.fanout`: Kafka events → deliveries."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_WEBHOOK_FANOUT__")

    kafka: Kafka = Kafka()
    # the fan-out reads `<topic_prefix><event type>` (tests run on topics of their own)
    topic_prefix: str = ""
    consumer_group: str = "shopstream-webhook-fanout"


class WebhookDispatcherSettings(WebhookSettings):
    """`python -m webhooks.dispatcher`: deliveries → partners' endpoints."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_WEBHOOK_DISPATCHER__")

    # one partner's POST: connect + read timeout, seconds
    request_timeout: float = 10.0
    # deliveries the dispatcher works on at once (its RabbitMQ prefetch)
    concurrency: int = 32
    # /metrics of the dispatcher (port 0: none)
    metrics: WebhookMetricsEndpoint = WebhookMetricsEndpoint()
