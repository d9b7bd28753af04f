"""The serving API's metrics (Prometheus); traces and logs are `shopstream.runtime.telemetry`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ORDERS_CREATED = Counter("orders_created_total", "Orders created (committed with their order.created event)")
ORDER_CREATION_LATENCY = Histogram(
    "order_creation_latency_ms",
    "POST /orders from request to commit, in milliseconds",
    buckets=(1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 350, 500, 1000, 2500),
)
PRODUCT_CACHE = Counter("product_cache_lookups_total", "Product read-through cache lookups", ["result"])
PRODUCT_CACHE_HIT_RATIO = Gauge("product_cache_hit_ratio", "Share of product reads answered by the cache since start")
RESERVATION_FAILURES = Counter("inventory_reservation_failures_total", "Reservations refused or failed", ["reason"])
