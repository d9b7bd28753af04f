"""`python -m registry`: run the schema registry (uvicorn), state in a Kafka topic."""

from __future__ import annotations

import logging

import uvicorn
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.app import create_app
from registry.log import KafkaLog
from registry.store import Log, MemoryLog, SchemaStore


class RegistrySettings(BaseSettings):
    """The registry as a deployable: `SHOPSTREAM_REGISTRY__PORT=8081`, `..._KAFKA_BOOTSTRAP=...`."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_REGISTRY__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8081
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic: str = "_schemas"
    # "kafka" (durable, the default) or "memory" (a throw-away registry for experiments)
    storage: str = "kafka"


def main() -> None:
    settings = RegistrySettings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log: Log
    if settings.storage == "memory":
        log = MemoryLog()
    else:
        kafka_log = KafkaLog(settings.kafka_bootstrap, settings.topic)
        kafka_log.ensure_topic()
        log = kafka_log
    store = SchemaStore(log)
    count = store.load()
    logging.getLogger("registry").info("replayed %d records from %s", count, settings.topic)
    uvicorn.run(create_app(store), host=settings.host, port=settings.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
