"""`python -m ingest` (or `shopstream ingest run`): the IoT stock ingest until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import httpx

from ingest.health import serve_health
from ingest.mqtt_stock import StockIngest
from ingest.settings import IotIngestSettings
from ingest.writer import StockWriter, TokenSource
from shopstream.runtime.dead_letters import DeadLetterWriter


async def serve(settings: IotIngestSettings, tokens: TokenSource) -> None:
    dead_letters = DeadLetterWriter(
        settings.kafka.bootstrap, settings.dead_letter_topic, client_id="iot-ingest", partitions=3
    )
    await asyncio.to_thread(dead_letters.ensure_topic)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
    async with httpx.AsyncClient(base_url=settings.api.url, timeout=settings.api_timeout_s, limits=limits) as http:
        ingest = StockIngest(settings, StockWriter(http, tokens), dead_letters)
        health = serve_health(
            settings.listen.host, settings.listen.port, lambda: ingest.tally.as_json(ingest.buffered, ingest.retrying)
        )
        try:
            await ingest.run(stop)
        finally:
            health.shutdown()
            dead_letters.close()


def main() -> None:
    settings = IotIngestSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per adjustment
    try:
        tokens = TokenSource(settings.api_token.get_secret_value(), settings.api_token_file)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    asyncio.run(serve(settings, tokens))


if __name__ == "__main__":
    main()
