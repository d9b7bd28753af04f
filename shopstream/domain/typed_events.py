"""Domain events as typed values, made from their decoded Avro records in one place
(`from_record`): the dataflows' steps take these, never `dict[str, Any]`. No I/O; the envelope's
ids ride along so that what a step writes can name the event that caused it.

They are msgspec Structs (frozen, not tracked by the garbage collector: they hold no cycles): a
dataflow makes one per input record, and a Struct takes a tenth of the time a frozen dataclass
does to make.

Field by field these follow `schemas/<topic>.avsc` (checked by tests/unit/test_typed_events.py):
a new schema field is a new attribute here, or the test says which one is missing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from shopstream.domain.envelope import epoch_ms
from shopstream.domain.money import Money


class BadEvent(ValueError):
    """A decoded record that is not a valid event of its type (a dead letter, not a crash)."""


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """The canonical envelope's fields every event carries (spec §6)."""

    event_id: str
    event_type: str
    occurred_at: int  # epoch ms
    producer: str
    trace_id: str
    correlation_id: str
    schema_version: str
    partition_key: str

    @classmethod
    def of(cls, record: dict[str, Any]) -> Envelope:
        return cls(
            str(record["eventId"]),  # the Avro decoders give a UUID (logicalType uuid)
            record["eventType"],
            epoch_ms(record["occurredAt"]),
            record["producer"],
            record["traceId"],
            record["correlationId"],
            record["schemaVersion"],
            record["partitionKey"],
        )


def _money(value: dict[str, Any]) -> Money:
    return Money(value["amountMinor"], value["currency"])


class OrderItem(msgspec.Struct, frozen=True, gc=False):
    product_id: str
    qty: int
    unit_price: Money


class OrderCreated(msgspec.Struct, frozen=True, gc=False):
    envelope: Envelope
    order_id: str
    user_id: str
    total_amount: Money
    items: tuple[OrderItem, ...]


class OrderPaid(msgspec.Struct, frozen=True, gc=False):
    envelope: Envelope
    order_id: str
    user_id: str
    payment_id: str
    amount: Money
    paid_at: int  # epoch ms


class ReleasedItem(msgspec.Struct, frozen=True, gc=False):
    product_id: str
    qty: int


class OrderCanceled(msgspec.Struct, frozen=True, gc=False):
    envelope: Envelope
    order_id: str
    user_id: str
    reason: str
    canceled_by: str
    released_items: tuple[ReleasedItem, ...]


class OrderFulfilled(msgspec.Struct, frozen=True, gc=False):
    envelope: Envelope
    order_id: str
    user_id: str
    fulfilled_at: int  # epoch ms
    tracking_number: str | None


class StockAdjusted(msgspec.Struct, frozen=True, gc=False):
    envelope: Envelope
    product_id: str
    delta: int  # change in available units
    reason: str
    order_id: str | None
    available: int
    on_hand: int | None  # after the change (contract 1.1+)
    reserved: int | None
    stock_version: int | None


class ProductUpdated(msgspec.Struct, frozen=True, gc=False):
    envelope: Envelope
    product_id: str
    sku: str
    name: str
    description: str | None
    price: Money
    price_version: int
    active: bool
    version: int | None  # contract 1.0 records carry none
    category: str | None = None  # contract 1.2


class StockSnapshotUpdated(msgspec.Struct, frozen=True, gc=False):
    """The inventory_snapshot projection's record of one product's stock (a projection topic)."""

    envelope: Envelope
    product_id: str
    on_hand: int
    reserved: int
    available: int
    version: int  # the stock row's version: keep the highest
    updated_at: int  # epoch ms


class FlashSaleStarted(msgspec.Struct, frozen=True, gc=False):
    envelope: Envelope
    sale_id: str
    product_id: str
    sale_price: Money
    regular_price: Money
    starts_at: int  # epoch ms
    ends_at: int


class FlashSaleEnded(msgspec.Struct, frozen=True, gc=False):
    envelope: Envelope
    sale_id: str
    product_id: str
    ends_at: int  # when it would have ended, epoch ms
    ended_at: int
    ended_by: str


OrderEvent = OrderCreated | OrderPaid | OrderCanceled | OrderFulfilled
DomainEvent = OrderEvent | StockAdjusted | StockSnapshotUpdated | ProductUpdated | FlashSaleStarted | FlashSaleEnded


def _order_created(e: Envelope, p: dict[str, Any]) -> OrderCreated:
    items = tuple(OrderItem(i["productId"], i["qty"], _money(i["unitPrice"])) for i in p["items"])
    return OrderCreated(e, p["orderId"], p["userId"], _money(p["totalAmount"]), items)


def _order_paid(e: Envelope, p: dict[str, Any]) -> OrderPaid:
    return OrderPaid(e, p["orderId"], p["userId"], p["paymentId"], _money(p["amount"]), epoch_ms(p["paidAt"]))


def _order_canceled(e: Envelope, p: dict[str, Any]) -> OrderCanceled:
    released = tuple(ReleasedItem(i["productId"], i["qty"]) for i in p["releasedItems"])
    return OrderCanceled(e, p["orderId"], p["userId"], p["reason"], p["canceledBy"], released)


def _order_fulfilled(e: Envelope, p: dict[str, Any]) -> OrderFulfilled:
    return OrderFulfilled(e, p["orderId"], p["userId"], epoch_ms(p["fulfilledAt"]), p.get("trackingNumber"))


def _stock_adjusted(e: Envelope, p: dict[str, Any]) -> StockAdjusted:
    return StockAdjusted(
        e,
        p["productId"],
        p["delta"],
        p["reason"],
        p.get("orderId"),
        p["available"],
        p.get("onHand"),
        p.get("reserved"),
        p.get("stockVersion"),
    )


def _stock_snapshot_updated(e: Envelope, p: dict[str, Any]) -> StockSnapshotUpdated:
    return StockSnapshotUpdated(
        e, p["productId"], p["onHand"], p["reserved"], p["available"], p["version"], epoch_ms(p["updatedAt"])
    )


def _product_updated(e: Envelope, p: dict[str, Any]) -> ProductUpdated:
    return ProductUpdated(
        e,
        p["productId"],
        p["sku"],
        p["name"],
        p.get("description"),
        _money(p["price"]),
        p["priceVersion"],
        p["active"],
        p.get("version"),
        p.get("category"),
    )


def _flash_sale_started(e: Envelope, p: dict[str, Any]) -> FlashSaleStarted:
    return FlashSaleStarted(
        e,
        p["saleId"],
        p["productId"],
        _money(p["salePrice"]),
        _money(p["regularPrice"]),
        epoch_ms(p["startsAt"]),
        epoch_ms(p["endsAt"]),
    )


def _flash_sale_ended(e: Envelope, p: dict[str, Any]) -> FlashSaleEnded:
    return FlashSaleEnded(e, p["saleId"], p["productId"], epoch_ms(p["endsAt"]), epoch_ms(p["endedAt"]), p["endedBy"])


# event type name → (class, maker from (envelope, payload))
_MAKERS: dict[str, tuple[type[Any], Callable[[Envelope, dict[str, Any]], Any]]] = {
    "ecommerce.order.order.created.v1": (OrderCreated, _order_created),
    "ecommerce.order.order.paid.v1": (OrderPaid, _order_paid),
    "ecommerce.order.order.canceled.v1": (OrderCanceled, _order_canceled),
    "ecommerce.order.order.fulfilled.v1": (OrderFulfilled, _order_fulfilled),
    "ecommerce.inventory.stock.adjusted.v1": (StockAdjusted, _stock_adjusted),
    "ecommerce.inventory.stock_snapshot.updated.v1": (StockSnapshotUpdated, _stock_snapshot_updated),
    "ecommerce.product.product.updated.v1": (ProductUpdated, _product_updated),
    "ecommerce.pricing.flash_sale.started.v1": (FlashSaleStarted, _flash_sale_started),
    "ecommerce.pricing.flash_sale.ended.v1": (FlashSaleEnded, _flash_sale_ended),
}
EVENT_CLASSES: dict[str, type[Any]] = {name: cls for name, (cls, _) in _MAKERS.items()}


def from_record(record: dict[str, Any]) -> DomainEvent:
    """The typed event of a decoded Avro record; BadEvent when it is not one we know, or a field
    is missing or not a valid value (money, say)."""
    maker = _MAKERS.get(record.get("eventType"))  # type: ignore[arg-type]
    if maker is None:
        raise BadEvent(f"not an event type the dataflows read: {record.get('eventType')!r}")
    try:
        event: DomainEvent = maker[1](Envelope.of(record), record["payload"])
        return event
    except KeyError as exc:
        raise BadEvent(f"no field {exc} in a {record.get('eventType')!r} record") from None
    except (TypeError, ValueError) as exc:  # MoneyError is a ValueError
        raise BadEvent(f"not a valid {record.get('eventType')!r}: {exc}") from None
