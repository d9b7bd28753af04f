"""Settings of the partner-webhook-dispatcher processes (the Kafka fan-out and the dispatcher), from
`SHOPSTREAM_WEBHOOKS__*`. The retry schedule defaults to the seed's (domain spec §4, §8); tests run a
compressed one (`SHOPSTREAM_WEBHOOKS__RETRY_SCHEDULE='[0.5, 1, 1.5, 2, 2.5]'`)."""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# 30 s, 2 m, 5 m, 15 m, 30 m: the waits before the 1st..5th retry
SEED_SCHEDULE: tuple[float, ...] = (30, 120, 300, 900, 1800)


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_WEBHOOKS__", extra="ignore")

    postgres_dsn: SecretStr = SecretStr("postgresql://shopstream:shopstream@127.0.0.1:5432/shopstream")
    pool_size: int = 5
    kafka_bootstrap: str = "127.0.0.1:9092"
    registry_url: str = "http://127.0.0.1:8081"
    rabbitmq_url: SecretStr = SecretStr("amqp://shopstream:shopstream@127.0.0.1:5672/")
    # seconds to wait before each retry; a delivery gets 1 + len(schedule) attempts, then the DLQ
    retry_schedule: tuple[float, ...] = SEED_SCHEDULE
    # names of the exchanges and queues: <prefix>.work, <prefix>.retry.<delay>, <prefix>.dlq
    queue_prefix: str = "webhooks"
    # the fan-out reads `<topic_prefix><event type>` (tests run on topics of their own)
    topic_prefix: str = ""
    consumer_group: str = "shopstream-webhook-fanout"
    # one partner's POST: connect + read timeout, seconds
    request_timeout: float = 10.0
    # deliveries the dispatcher works on at once (its RabbitMQ prefetch)
    concurrency: int = 32
    # /metrics of the dispatcher (0: none)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9465

    @field_validator("retry_schedule")
    @classmethod
    def _positive_waits(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(wait <= 0 for wait in value):
            raise ValueError("every wait of SHOPSTREAM_WEBHOOKS__RETRY_SCHEDULE must be > 0 seconds")
        return value
