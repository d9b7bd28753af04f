"""Traces (OpenTelemetry, W3C trace context) and structured JSON logs with correlation ids
(orderId, traceId, userId, eventType, correlationId), shared by the writers' processes (the API, the
inventory gRPC service, the webhook workers)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()


def setup_tracing(service: str, traces_file: str = "") -> None:
    """A tracer provider for this process; spans go to a JSON-lines file when one is given."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if traces_file:
        stream = open(traces_file, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        provider.add_span_processor(
            BatchSpanProcessor(ConsoleSpanExporter(out=stream, formatter=lambda span: span.to_json(indent=None) + "\n"))
        )
    trace.set_tracer_provider(provider)


def current_ids() -> tuple[str, str]:
    """(trace id, W3C traceparent) of the current span."""
    ctx = trace.get_current_span().get_span_context()
    trace_id = format(ctx.trace_id, "032x")
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return trace_id, carrier.get("traceparent", f"00-{trace_id}-{format(ctx.span_id, '016x')}-01")


def extract(headers: Mapping[str, str]) -> Any:
    return PROPAGATOR.extract(dict(headers))


class JsonFormatter(logging.Formatter):
    FIELDS = ("orderId", "traceId", "userId", "eventType", "correlationId")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per outgoing call is noise here
