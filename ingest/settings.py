"""Settings of the IoT stock ingest (`SHOPSTREAM_IOT_INGEST__*`): the broker and session, the
writers' API it adjusts stock through, the dead-letter topic, its health port."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ingest.payload import TOPIC_FILTER
from shopstream.runtime.settings import Api, DeployableSettings, IotIngestEndpoint, Kafka, Mqtt


class IotIngestSettings(DeployableSettings):
    """`shopstream ingest run`, e.g. `SHOPSTREAM_IOT_INGEST__MQTT__HOST=mosquitto`."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_IOT_INGEST__")

    mqtt: Mqtt = Mqtt()
    # the persistent session's name: the broker keeps its subscription and queues QoS 1 messages
    # for it while the ingest is away; two ingests with one id would take the session from each other
    client_id: str = "shopstream-iot-ingest"
    topic_filter: str = TOPIC_FILTER
    keepalive_s: int = Field(default=15, ge=5)

    # the writers: stock adjustments go through the REST API (never to Postgres directly)
    api: Api = Api()
    # the ingest's own credential: a bearer token of role STOCK_KEEPER (stock adjustments only),
    # given as is, or in a file that its issuer rotates (re-read when it changes; the local stack
    # writes one, `dev.stack.identity`). One of the two is needed to start.
    api_token: SecretStr = SecretStr("")
    api_token_file: Path | None = None
    api_timeout_s: float = Field(default=10.0, gt=0)
    # adjustments in flight at once (each SKU's deltas stay in order: one at a time per SKU)
    concurrency: int = Field(default=16, ge=1, le=256)
    # retry of an unavailable API (connection refused, 5xx): exponential from min to max, no limit
    retry_min_s: float = Field(default=0.2, gt=0)
    retry_max_s: float = Field(default=5.0, gt=0)

    kafka: Kafka = Kafka()
    dead_letter_topic: str = "shopstream.dlq.iot_ingest"

    # /health (JSON counters) and /metrics (Prometheus)
    listen: IotIngestEndpoint = IotIngestEndpoint()
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"

    @property
    def url(self) -> str:
        """Where the ingest's /health answers."""
        return self.listen.url
