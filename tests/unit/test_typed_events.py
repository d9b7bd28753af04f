"""shopstream.domain.typed_events against schemas/: field by field, and from decoded records."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import types
import typing
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import msgspec
import pytest

from shopstream.domain import event_type
from shopstream.domain.envelope import envelope, epoch_ms
from shopstream.domain.money import Money
from shopstream.domain.typed_events import _MAKERS, EVENT_CLASSES, BadEvent, Envelope, from_record

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ENVELOPE_FIELDS = (
    "eventId",
    "eventType",
    "occurredAt",
    "producer",
    "traceId",
    "correlationId",
    "schemaVersion",
    "partitionKey",
)
EVENT_NAMES = sorted(_MAKERS)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def schema(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMAS / f"{name}.avsc").read_text())
    return doc


def named_records(doc: Any, into: dict[str, dict[str, Any]], namespace: str = "") -> dict[str, dict[str, Any]]:
    """Every record type the schema defines, by full name (named references resolve through it)."""
    if isinstance(doc, list):
        for d in doc:
            named_records(d, into, namespace)
    elif isinstance(doc, dict):
        if doc.get("type") == "record":
            namespace = doc.get("namespace", namespace)
            into[f"{namespace}.{doc['name']}"] = doc
            for f in doc["fields"]:
                named_records(f["type"], into, namespace)
        elif doc.get("type") == "array":
            named_records(doc["items"], into, namespace)
    return into


def record_type(avro_type: Any, named: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The record an Avro field type is (inline or by name; through arrays and nullable unions)."""
    if isinstance(avro_type, str):
        return named.get(avro_type)
    if isinstance(avro_type, list):
        found = [r for r in (record_type(t, named) for t in avro_type) if r is not None]
        return found[0] if found else None
    if avro_type.get("type") == "record":
        return avro_type
    if avro_type.get("type") == "array":
        return record_type(avro_type["items"], named)
    return None


def is_record_class(value: Any) -> bool:
    """A typed event's class or one of its parts: a msgspec Struct, or a dataclass (Money)."""
    kind = value if isinstance(value, type) else type(value)
    return issubclass(kind, msgspec.Struct) or dataclasses.is_dataclass(kind)


def attribute_names(cls: Any) -> list[str]:
    """A Struct's or dataclass's attributes (or an instance's), in order."""
    if isinstance(cls, msgspec.Struct) or (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
        return [f.name for f in msgspec.structs.fields(cls)]
    return [f.name for f in dataclasses.fields(cls)]


def attribute_class(cls: type[Any], attribute: str) -> type[Any]:
    """The dataclass an attribute holds (through tuples and `| None`)."""
    hint = typing.get_type_hints(cls)[attribute]
    while typing.get_origin(hint) in (tuple, types.UnionType, typing.Union):
        hint = next(a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis)
    assert is_record_class(hint), f"{cls.__name__}.{attribute} is {hint!r}, not a record's class"
    return typing.cast(type[Any], hint)


def mismatches(record: dict[str, Any], cls: type[Any], named: dict[str, dict[str, Any]], path: str) -> list[str]:
    """What differs between a record's fields and a dataclass's attributes, recursively."""
    attributes = set(attribute_names(cls)) - ({"envelope"} if path.endswith("payload") else set())
    fields = {f["name"]: f for f in record["fields"]}
    problems = [f"{path}.{n}: no attribute {cls.__name__}.{snake(n)}" for n in fields if snake(n) not in attributes]
    problems += [f"{cls.__name__}.{a}: no field {path}.{camel(a)}" for a in attributes if camel(a) not in fields]
    for name, f in fields.items():
        nested = record_type(f["type"], named)
        if nested is not None and snake(name) in attributes:
            problems += mismatches(nested, attribute_class(cls, snake(name)), named, f"{path}.{name}")
    return problems


def test_every_event_type_the_dataflows_read_has_a_class_and_a_schema() -> None:
    assert set(EVENT_CLASSES) == set(_MAKERS)
    assert len(EVENT_NAMES) == 9
    for name in EVENT_NAMES:
        assert (SCHEMAS / f"{name}.avsc").is_file(), name
        assert event_type(name).name == name


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_the_envelope_fields_map_to_the_envelope_attributes(name: str) -> None:
    doc = schema(name)
    top = [f["name"] for f in doc["fields"]]
    assert top == [*ENVELOPE_FIELDS, "payload"]
    assert [camel(n) for n in attribute_names(Envelope)] == list(ENVELOPE_FIELDS)
    assert attribute_names(EVENT_CLASSES[name])[0] == "envelope"


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_payload_field_maps_to_an_attribute_and_back(name: str) -> None:
    doc = schema(name)
    named = named_records(doc, {})
    payload = record_type(next(f["type"] for f in doc["fields"] if f["name"] == "payload"), named)
    assert payload is not None
    assert mismatches(payload, EVENT_CLASSES[name], named, "payload") == []


def test_the_field_check_finds_a_field_without_an_attribute_and_an_attribute_without_a_field() -> None:
    doc = schema("ecommerce.order.order.created.v1")
    payload = doc["fields"][-1]["type"]
    payload["fields"].append({"name": "couponCode", "type": "string"})
    item = payload["fields"][3]["type"]["items"]
    item["fields"] = [f for f in item["fields"] if f["name"] != "qty"]
    named = named_records(doc, {})
    assert sorted(mismatches(payload, EVENT_CLASSES["ecommerce.order.order.created.v1"], named, "payload")) == [
        "OrderItem.qty: no field payload.items.qty",
        "payload.couponCode: no attribute OrderCreated.coupon_code",
    ]


# --- from decoded records --------------------------------------------------------------------------

AT = datetime(2026, 11, 27, 10, 15, 30, 250_000, tzinfo=UTC)


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(AT.timestamp() + seconds, UTC)


def usd(minor: int) -> dict[str, Any]:
    return {"amountMinor": minor, "currency": "USD"}


PAYLOADS: dict[str, dict[str, Any]] = {
    "ecommerce.order.order.created.v1": {
        "orderId": "ORD-1",
        "userId": "USR-7",
        "totalAmount": usd(7_450),
        "items": [
            {"productId": "P-1", "qty": 2, "unitPrice": usd(2_500)},
            {"productId": "P-2", "qty": 1, "unitPrice": usd(2_450)},
        ],
    },
    "ecommerce.order.order.paid.v1": {
        "orderId": "ORD-1",
        "userId": "USR-7",
        "paymentId": "pay_93",
        "amount": usd(7_450),
        "paidAt": ts(3),
    },
    "ecommerce.order.order.canceled.v1": {
        "orderId": "ORD-2",
        "userId": "USR-7",
        "reason": "customer request",
        "canceledBy": "ADM-1",
        "releasedItems": [{"productId": "P-1", "qty": 2}, {"productId": "P-3", "qty": 5}],
    },
    "ecommerce.order.order.fulfilled.v1": {
        "orderId": "ORD-1",
        "userId": "USR-7",
        "fulfilledAt": ts(60),
        "trackingNumber": "1Z999",
    },
    "ecommerce.inventory.stock.adjusted.v1": {
        "productId": "P-1",
        "delta": -2,
        "reason": "RESERVATION",
        "orderId": "ORD-1",
        "available": 8,
        "onHand": 12,
        "reserved": 4,
        "stockVersion": 17,
    },
    "ecommerce.inventory.stock_snapshot.updated.v1": {
        "productId": "P-1",
        "onHand": 12,
        "reserved": 4,
        "available": 8,
        "version": 17,
        "updatedAt": ts(5),
    },
    "ecommerce.product.product.updated.v1": {
        "productId": "P-1",
        "sku": "SKU-1",
        "name": "Kettle",
        "description": "1.7 l",
        "price": usd(3_999),
        "priceVersion": 3,
        "active": True,
        "version": 11,
        "category": "kitchen",
    },
    "ecommerce.pricing.flash_sale.started.v1": {
        "saleId": "S-1",
        "productId": "P-1",
        "salePrice": usd(2_999),
        "regularPrice": usd(3_999),
        "startsAt": ts(0),
        "endsAt": ts(3_600),
    },
    "ecommerce.pricing.flash_sale.ended.v1": {
        "saleId": "S-1",
        "productId": "P-1",
        "endsAt": ts(3_600),
        "endedAt": ts(1_200),
        "endedBy": "ADM-1",
    },
}


def record_of(name: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """A record as the Avro decoder gives it: written and read with the schema file."""
    written = envelope(
        event_type(name),
        payload or PAYLOADS[name],
        producer="order-service",
        correlation_id="corr-1",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        occurred_at=AT,
        event_id=uuid.UUID(int=42),
    )
    parsed = fastavro.parse_schema(schema(name))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, written)
    out.seek(0)
    decoded: dict[str, Any] = fastavro.schemaless_reader(out, parsed, parsed)  # type: ignore[call-arg,assignment]
    return decoded


def plain(value: Any) -> Any:
    """A typed value as the record it came from: camelCase fields, lists, epoch ms."""
    if is_record_class(value) and not isinstance(value, type):
        return {camel(n): plain(getattr(value, n)) for n in attribute_names(value)}
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


def as_ms(value: Any) -> Any:
    if isinstance(value, datetime):
        return epoch_ms(value)
    if isinstance(value, dict):
        return {k: as_ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_ms(v) for v in value]
    return value


def test_every_event_type_has_a_realistic_payload_here() -> None:
    assert set(PAYLOADS) == set(EVENT_NAMES)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_a_decoded_record_becomes_its_typed_event_value_by_value(name: str) -> None:
    record = record_of(name)
    assert isinstance(record["occurredAt"], datetime)  # what a decoder gives
    event = from_record(record)
    assert type(event) is EVENT_CLASSES[name]
    assert event.envelope == Envelope(
        str(uuid.UUID(int=42)),
        name,
        epoch_ms(AT),
        "order-service",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "corr-1",
        event_type(name).schema_version,
        record["partitionKey"],
    )
    fields = plain(event)
    del fields["envelope"]
    assert fields == as_ms(PAYLOADS[name])


def test_money_and_timestamps_are_typed() -> None:
    paid = from_record(record_of("ecommerce.order.order.paid.v1"))
    assert paid.amount == Money(7_450, "USD")  # type: ignore[union-attr]
    assert paid.paid_at == epoch_ms(AT) + 3_000  # type: ignore[union-attr]
    assert paid.envelope.occurred_at == 1_795_774_530_250


@pytest.mark.parametrize(
    ("name", "optional"),
    [
        ("ecommerce.order.order.fulfilled.v1", "trackingNumber"),
        ("ecommerce.inventory.stock.adjusted.v1", "stockVersion"),
        ("ecommerce.product.product.updated.v1", "version"),
        ("ecommerce.product.product.updated.v1", "description"),
    ],
)
def test_a_null_optional_field_is_none(name: str, optional: str) -> None:
    event = from_record(record_of(name, {**PAYLOADS[name], optional: None}))
    assert getattr(event, snake(optional)) is None


def without(record: dict[str, Any], *path: str | int) -> dict[str, Any]:
    *parents, last = path
    inner: Any = record
    for p in parents:
        inner = inner[p]
    del inner[last]
    return record


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("ecommerce.order.order.paid.v1", ("payload", "amount")),
        ("ecommerce.order.order.paid.v1", ("payload", "paidAt")),
        ("ecommerce.order.order.created.v1", ("payload", "items", 1, "qty")),
        ("ecommerce.order.order.created.v1", ("payload", "totalAmount", "currency")),
        ("ecommerce.order.order.canceled.v1", ("payload", "releasedItems", 0, "productId")),
        ("ecommerce.inventory.stock.adjusted.v1", ("payload", "available")),
        ("ecommerce.inventory.stock_snapshot.updated.v1", ("payload", "version")),
        ("ecommerce.product.product.updated.v1", ("payload", "priceVersion")),
        ("ecommerce.pricing.flash_sale.started.v1", ("payload", "regularPrice")),
        ("ecommerce.pricing.flash_sale.ended.v1", ("payload", "endedBy")),
        ("ecommerce.order.order.fulfilled.v1", ("traceId",)),
        ("ecommerce.order.order.fulfilled.v1", ("payload",)),
    ],
)
def test_a_missing_field_is_a_bad_event(name: str, path: tuple[str | int, ...]) -> None:
    record = without(record_of(name), *path)
    with pytest.raises(BadEvent, match="no field"):
        from_record(record)


@pytest.mark.parametrize(
    ("name", "money"),
    [
        ("ecommerce.order.order.paid.v1", ("amount",)),
        ("ecommerce.order.order.created.v1", ("items", 0, "unitPrice")),
        ("ecommerce.product.product.updated.v1", ("price",)),
        ("ecommerce.pricing.flash_sale.started.v1", ("salePrice",)),
    ],
)
@pytest.mark.parametrize("currency", ["usd", "US", "", "DOLLARS"])
def test_a_bad_currency_is_a_bad_event(name: str, money: tuple[str | int, ...], currency: str) -> None:
    record = record_of(name)
    inner: Any = record["payload"]
    for p in money:
        inner = inner[p]
    inner["currency"] = currency
    with pytest.raises(BadEvent, match="currency"):
        from_record(record)


def test_an_amount_that_is_not_integer_minor_units_is_a_bad_event() -> None:
    record = record_of("ecommerce.order.order.paid.v1")
    record["payload"]["amount"]["amountMinor"] = 74.5
    with pytest.raises(BadEvent, match="integer minor units"):
        from_record(record)


def test_a_payload_that_is_not_a_record_is_a_bad_event() -> None:
    record = record_of("ecommerce.order.order.paid.v1")
    record["payload"] = None
    with pytest.raises(BadEvent):
        from_record(record)


@pytest.mark.parametrize(
    "event_type_name",
    ["ecommerce.order.order.refunded.v1", "ecommerce.webhook.delivery.failed.v1", "", None],
)
def test_an_unknown_event_type_is_a_bad_event(event_type_name: str | None) -> None:
    record = record_of("ecommerce.order.order.paid.v1")
    record["eventType"] = event_type_name
    with pytest.raises(BadEvent, match="not an event type the dataflows read"):
        from_record(record)


def test_a_record_without_an_event_type_is_a_bad_event() -> None:
    record = record_of("ecommerce.order.order.paid.v1")
    del record["eventType"]
    with pytest.raises(BadEvent, match="not an event type"):
        from_record(record)
