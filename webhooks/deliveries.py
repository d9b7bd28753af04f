"""A delivery: one event to one subscription. The fan-out makes it from a Kafka record; it travels
through RabbitMQ as JSON and is POSTed, unchanged, on every attempt (only the timestamp, and so
the signature, are new each time). Its id is derived from (subscription, event), so a record the
fan-out reads twice becomes the same delivery: the partner dedups on `X-BV-Delivery-Id`."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shopstream.domain import event_type

# the events partners may subscribe to: order lifecycle and flash sales
SUBSCRIBABLE: tuple[str, ...] = tuple(
    event_type(name).name
    for name in (
        "ecommerce.order.order.created.v1",
        "ecommerce.order.order.paid.v1",
        "ecommerce.order.order.canceled.v1",
        "ecommerce.order.order.fulfilled.v1",
        "ecommerce.pricing.flash_sale.started.v1",
        "ecommerce.pricing.flash_sale.ended.v1",
    )
)
_DELIVERY_NAMESPACE = uuid.UUID("6f1c8a52-3e0b-4c1e-9d8e-0b5f1f7d2a10")


def delivery_id(subscription_id: str, event_id: str) -> str:
    """Stable across fan-out replays and retries: the idempotency id partners see."""
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{subscription_id}/{event_id}"))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON: {type(value).__name__}")


def webhook_body(record: dict[str, Any]) -> str:
    """What a partner receives: the event's envelope as JSON (timestamps ISO 8601 UTC)."""
    body = {
        "eventId": str(record["eventId"]),
        "eventType": record["eventType"],
        "occurredAt": record["occurredAt"],
        "producer": record["producer"],
        "correlationId": record["correlationId"],
        "schemaVersion": record["schemaVersion"],
        "data": record["payload"],
    }
    return json.dumps(body, default=_json_value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    correlation_id: str
    trace_id: str
    body: str  # the exact bytes (UTF-8) that are signed and POSTed

    @classmethod
    def of(cls, subscription_id: str, record: dict[str, Any]) -> Delivery:
        event_id = str(record["eventId"])
        return cls(
            delivery_id=delivery_id(subscription_id, event_id),
            subscription_id=subscription_id,
            event_id=event_id,
            event_type=record["eventType"],
            correlation_id=record["correlationId"],
            trace_id=record["traceId"],
            body=webhook_body(record),
        )

    def to_message(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_message(cls, data: bytes) -> Delivery:
        """A delivery back from a RabbitMQ message body; ValueError when it is not one."""
        try:
            fields = json.loads(data)
            return cls(**{name: str(fields[name]) for name in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a webhook delivery: {exc}") from exc
