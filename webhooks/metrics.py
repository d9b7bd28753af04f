"""Prometheus metrics of the partner-webhook-dispatcher (served by the dispatcher on
`SHOPSTREAM_WEBHOOK_DISPATCHER__METRICS__PORT`, default 9465)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RETRY_ATTEMPTS = Counter(
    "webhook_retry_attempts_total", "Webhook POSTs that were retries (attempt 2 and later) of a delivery"
)
ATTEMPTS = Counter(
    "webhook_delivery_attempts_total",
    "Webhook POSTs by result: delivered (2xx), retry (failed, queued again), dead (failed, last attempt)",
    ["outcome"],
)
DELIVERIES_DEAD_LETTERED = Counter(
    "webhook_deliveries_dead_lettered_total", "Deliveries that exhausted the retry schedule (DLQ)"
)
DELIVERIES_DROPPED = Counter(
    "webhook_deliveries_dropped_total",
    "Deliveries not attempted: subscription deleted, already finished (a duplicate), or unreadable",
    ["reason"],
)
LATENCY = Histogram(
    "webhook_delivery_latency_seconds",
    "Duration of one webhook POST (until the response or the error)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMING = Gauge("webhook_dispatcher_consuming", "1 while the dispatcher consumes its work queue")
