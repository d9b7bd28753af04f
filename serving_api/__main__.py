"""`python -m serving_api`: the storefront REST API (uvicorn)."""

from __future__ import annotations

import uvicorn

from serving_api.http.app import create_app
from serving_api.settings import ApiSettings
from shopstream.runtime.telemetry import setup_logging, setup_tracing


def main() -> None:
    settings = ApiSettings()
    setup_logging()
    setup_tracing("order-service", settings.traces_file)
    uvicorn.run(
        create_app(settings),
        host=settings.listen.host,
        port=settings.listen.port,
        log_level="warning",
        access_log=False,
        # per-message deflate keeps a compressor per socket (most of an idle WebSocket's memory);
        # status frames are a hundred bytes
        ws_per_message_deflate=False,
    )


if __name__ == "__main__":
    main()
