"""`python -m registry`: run the schema registry (uvicorn), state in a Kafka topic."""

from __future__ import annotations

import logging

import uvicorn

from registry.app import create_app
from registry.log import KafkaLog
from registry.settings import RegistrySettings
from registry.store import Log, MemoryLog, SchemaStore


def main() -> None:
    settings = RegistrySettings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log: Log
    if settings.storage == "memory":
        log = MemoryLog()
    else:
        kafka_log = KafkaLog(settings.kafka.bootstrap, settings.topic)
        kafka_log.ensure_topic()
        log = kafka_log
    store = SchemaStore(log)
    count = store.load()
    logging.getLogger("shopstream.registry").info("replayed %d records from %s", count, settings.topic)
    listen = settings.listen
    uvicorn.run(create_app(store), host=listen.host, port=listen.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
