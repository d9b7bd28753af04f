"""The authoritative event catalogue (domain spec §6): one Kafka topic per event type, keyed by
the event's partition key, its value schema registered under `<topic>-value`."""

from __future__ import annotations

import re
from dataclasses import dataclass

# ecommerce.<context>.<aggregate>.<event in past tense>.v<major>
_NAME = re.compile(
    r"^ecommerce\.(?P<context>[a-z_]+)\.(?P<aggregate>[a-z_]+)\.(?P<event>[a-z_]+)\.v(?P<major>[1-9]\d*)$"
)


@dataclass(frozen=True)
class EventType:
    name: str
    purpose: str
    partition_key: str  # the payload field whose value keys the record
    # a projection's topic (written by a dataflow, not by a service through the outbox)
    derived: bool = False
    # compacted topic: the latest record per key is what counts (snapshots, window values)
    compacted: bool = False
    # the contract version written into the envelope's schemaVersion
    schema_version: str = "1.0"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"event type {self.name!r} is not ecommerce.<context>.<aggregate>.<event>.v<N>")

    @property
    def topic(self) -> str:
        return self.name

    @property
    def subject(self) -> str:
        """Schema-registry subject under TopicNameStrategy."""
        return f"{self.topic}-value"

    @property
    def context(self) -> str:
        return _NAME.match(self.name)["context"]  # type: ignore[index]

    @property
    def major_version(self) -> int:
        return int(_NAME.match(self.name)["major"])  # type: ignore[index]


EVENT_TYPES: tuple[EventType, ...] = (
    EventType("ecommerce.order.order.created.v1", "Start lifecycle", "orderId"),
    EventType("ecommerce.order.order.paid.v1", "Payment success", "orderId"),
    EventType("ecommerce.order.order.canceled.v1", "Compensation", "orderId"),
    EventType("ecommerce.order.order.fulfilled.v1", "Completion", "orderId"),
    EventType("ecommerce.inventory.stock.adjusted.v1", "Stock delta broadcast", "productId", schema_version="1.1"),
    EventType("ecommerce.product.product.updated.v1", "Cache/search invalidation", "productId", schema_version="1.2"),
    EventType("ecommerce.pricing.flash_sale.started.v1", "Broadcast sale", "productId"),
    EventType("ecommerce.pricing.flash_sale.ended.v1", "Sale ended early", "productId"),
    EventType("ecommerce.webhook.delivery.failed.v1", "Alert operations", "subscriptionId"),
    # projections written by the dataflows (streams/), registered like every other topic
    EventType(
        "ecommerce.inventory.stock_snapshot.updated.v1",
        "Inventory snapshot per product",
        "productId",
        derived=True,
        compacted=True,
    ),
    EventType(
        "ecommerce.analytics.revenue_window.updated.v1",
        "Revenue per window and currency",
        "windowId",
        derived=True,
        compacted=True,
    ),
)

_BY_NAME = {e.name: e for e in EVENT_TYPES}


def event_type(name: str) -> EventType:
    """Look an event type up by name; unknown names are an error, never a new topic."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown event type {name!r}; known: {', '.join(_BY_NAME)}") from None
