"""The Confluent wire format and the Avro serde, without a registry (schemas given up front)."""

from __future__ import annotations

import contextlib
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream.contracts.files import find_schema_file
from shopstream.serde import AvroSerde, BadMagicByte, RegistryClient, SerdeError, TruncatedRecord, frame, unframe
from shopstream.serde.avro import _codec
from shopstream.serde.errors import UndecodableRecord

CREATED = find_schema_file("ecommerce.order.order.created.v1")


def order_created(order_id: str = "ORDER-123", qty: int = 2) -> dict[str, Any]:
    return {
        "eventId": str(uuid.UUID(int=7)),
        "eventType": CREATED.topic,
        "occurredAt": datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        "producer": "order-service",
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "correlationId": "c-1",
        "schemaVersion": "1.0",
        "partitionKey": order_id,
        "payload": {
            "orderId": order_id,
            "userId": "USER-9",
            "totalAmount": {"amountMinor": 2500 * qty, "currency": "USD"},
            "items": [{"productId": "P1", "qty": qty, "unitPrice": {"amountMinor": 2500, "currency": "USD"}}],
        },
    }


@pytest.fixture
def serde() -> AvroSerde:
    # no registry is reachable at this address: every schema the test needs is given up front
    s = AvroSerde(RegistryClient("http://127.0.0.1:9"))
    s.add_reader(42, CREATED.text)
    return s


def encode_raw(record: dict[str, Any], schema_id: int = 42) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(CREATED.json()), record)
    return frame(schema_id, out.getvalue())


@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=64))
def test_frames_round_trip(schema_id: int, body: bytes) -> None:
    sid, view = unframe(frame(schema_id, body))
    assert (sid, bytes(view)) == (schema_id, body)


def test_bad_frames_are_typed_errors() -> None:
    with pytest.raises(TruncatedRecord):
        unframe(b"\x00\x00\x00")
    with pytest.raises(TruncatedRecord):
        unframe(None)
    with pytest.raises(BadMagicByte):
        unframe(b"\x01\x00\x00\x00\x2a\x02")


def test_a_record_decodes_to_what_was_written(serde: AvroSerde) -> None:
    schema_id, record = serde.decode(encode_raw(order_created()))
    assert schema_id == 42
    assert record["payload"]["totalAmount"] == {"amountMinor": 5000, "currency": "USD"}
    assert record["occurredAt"] == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_either_decode_or_raise_a_serde_error(body: bytes) -> None:
    serde = AvroSerde(RegistryClient("http://127.0.0.1:9"))
    serde.add_reader(42, CREATED.text)
    # a known schema id with any body, and any bytes that are not a frame (a registry outage, by
    # contrast, is not the record's fault and is raised as such, so unknown ids are left out here)
    for data in (frame(42, body), b"\x07" + body, body[:4]):
        with contextlib.suppress(SerdeError):
            serde.decode(data)


def test_a_corrupted_body_is_undecodable_not_a_crash(serde: AvroSerde) -> None:
    good = encode_raw(order_created())
    with pytest.raises(UndecodableRecord):
        serde.decode(good[:-3])  # cut short
    with pytest.raises(UndecodableRecord, match="left after the record"):
        serde.decode(good + b"\x00\x00")  # trailing garbage


def test_a_record_that_does_not_fit_the_schema_is_a_serde_error(serde: AvroSerde) -> None:
    serde._writers["x-value"] = (frame(42, b""), _codec(CREATED.json())[0])
    assert serde.decode(serde.encode("x-value", order_created()))[1]["partitionKey"] == "ORDER-123"
    for breakage in (
        lambda r: r["payload"]["items"][0].update(qty="two"),
        lambda r: r["payload"].pop("userId"),
        lambda r: r["payload"]["totalAmount"].update(amountMinor=2**64),
    ):
        broken = order_created()
        breakage(broken)
        with pytest.raises(SerdeError, match="does not fit"):
            serde.encode("x-value", broken)


@pytest.mark.parametrize(
    "schema",
    [
        '"string"',
        '["null", "long"]',
        '{"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}',
        '{"type": "record", "name": "R", "fields": [{"name": "xs", "type": {"type": "array", "items": '
        '{"type": "record", "name": "E", "fields": []}}}]}',
    ],
)
def test_any_registered_avro_schema_decodes_or_fails_typed(schema: str) -> None:
    serde = AvroSerde(RegistryClient("http://127.0.0.1:9"))
    serde.add_reader(7, schema)
    for body in (b"", b"\x00", b"\x02\x00", b"\x06abc", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"):
        with contextlib.suppress(SerdeError):
            serde.decode(frame(7, body))
