"""The ingest's own small HTTP endpoint: `/health` (JSON: the MQTT session and the counters; 503
while disconnected) and `/metrics` (Prometheus text)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shopstream import __version__


def metrics_text(state: dict[str, Any]) -> str:
    lines = [
        "# TYPE shopstream_iot_ingest_connected gauge",
        f"shopstream_iot_ingest_connected {int(bool(state['connected']))}",
        "# TYPE shopstream_iot_ingest_buffered gauge",
        f"shopstream_iot_ingest_buffered {state['buffered']}",
        "# TYPE shopstream_iot_ingest_retrying gauge",
        f"shopstream_iot_ingest_retrying {state.get('retrying', 0)}",
        "# TYPE shopstream_iot_ingest_messages_total counter",
    ]
    for outcome in ("received", "applied", "replayed", "unkeyed"):
        lines.append(f'shopstream_iot_ingest_messages_total{{outcome="{outcome}"}} {state[outcome]}')
    lines.append("# TYPE shopstream_iot_ingest_dead_letters_total counter")
    for reason, count in sorted(state["deadLetters"].items()):
        lines.append(f'shopstream_iot_ingest_dead_letters_total{{reason="{reason}"}} {count}')
    lines += [
        "# TYPE shopstream_iot_ingest_retries_total counter",
        f"shopstream_iot_ingest_retries_total {state['retries']}",
    ]
    return "\n".join(lines) + "\n"


def serve_health(host: str, port: int, state: Callable[[], dict[str, Any]]) -> ThreadingHTTPServer:
    """Start the endpoint in a daemon thread; `shutdown()` the returned server to stop it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            now = state()
            if self.path == "/health":
                status, body, kind = (
                    200 if now["connected"] else 503,
                    json.dumps({**now, "version": __version__}),
                    "application/json",
                )
            elif self.path == "/metrics":
                status, body, kind = 200, metrics_text(now), "text/plain; version=0.0.4"
            else:
                status, body, kind = 404, "{}", "application/json"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet probes
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
