"""The MQTT stock-delta contract (any bytes parse or are rejected with a reason, never crash) and
the ingest's lanes: in order per SKU, retried while the API is away, acknowledged only after."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingest import payload as p
from ingest.mqtt_stock import Inbound, StockIngest
from ingest.payload import Rejected, StockDelta, parse_delta, topic_for
from ingest.settings import IotIngestSettings
from ingest.writer import ApiUnavailable, Written
from shopstream.runtime.dead_letters import DeadLetter

REASONS = {
    p.BAD_TOPIC,
    p.TOO_LARGE,
    p.NOT_UTF8,
    p.NOT_JSON,
    p.NOT_OBJECT,
    p.UNKNOWN_FIELD,
    p.BAD_DELTA,
    p.BAD_REASON,
    p.BAD_DEVICE_ID,
    p.BAD_SEQ,
}
TOPIC = topic_for("SKU-1")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "delta": st.integers(-2_000_000, 2_000_000) | json_values,
        "reason": st.sampled_from(["SENSOR", "RESTOCK", "MANUAL", "OTHER", "THEFT", ""]) | json_values,
        "deviceId": st.from_regex(r"[A-Za-z0-9._:-]{1,70}", fullmatch=True) | json_values,
        "seq": st.integers(-5, 2**64) | json_values,
        "extra": json_values,
    },
)


def _valid_or_reasoned(result: StockDelta | Rejected) -> None:
    if isinstance(result, Rejected):
        assert result.reason in REASONS and result.detail
    else:
        assert result.delta != 0 and abs(result.delta) <= p.MAX_DELTA and result.reason in p.REASONS
        assert (result.device_id is None) == (result.seq is None)
        assert parse_delta(topic_for(result.sku), result.to_payload()) == result


@given(st.text(max_size=80), st.binary(max_size=5000))
def test_any_topic_and_bytes_parse_or_are_rejected_with_a_reason(topic: str, raw: bytes) -> None:
    _valid_or_reasoned(parse_delta(topic, raw))


@given(json_values)
def test_any_json_document_parses_or_is_rejected_with_a_reason(doc: Any) -> None:
    _valid_or_reasoned(parse_delta(TOPIC, json.dumps(doc).encode()))


@given(near_valid)
def test_near_valid_objects_parse_or_are_rejected_with_a_reason(doc: dict[str, Any]) -> None:
    _valid_or_reasoned(parse_delta(TOPIC, json.dumps(doc).encode()))


@given(
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    st.integers(-p.MAX_DELTA, p.MAX_DELTA).filter(bool),
    st.sampled_from(sorted(p.REASONS)),
    st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True),
    st.integers(0, p.MAX_SEQ),
)
def test_a_valid_delta_round_trips_and_its_key_fits_the_api(
    sku: str, delta: int, reason: str, device: str, seq: int
) -> None:
    item = StockDelta(sku, delta, reason, device, seq)
    assert parse_delta(topic_for(sku), item.to_payload()) == item
    key = item.idempotency_key
    assert key is not None and len(key) <= 200


def test_the_spec_payload_is_accepted_without_an_id() -> None:
    item = parse_delta("iot/inventory/MUG-1/delta", b'{"delta": -2, "reason": "SENSOR"}')
    assert item == StockDelta("MUG-1", -2, "SENSOR")
    assert isinstance(item, StockDelta) and item.idempotency_key is None
    assert parse_delta("iot/inventory/MUG-1/delta", b'{"delta": 3}') == StockDelta("MUG-1", 3, "SENSOR")


def test_the_id_names_device_sku_and_sequence() -> None:
    item = parse_delta(TOPIC, b'{"delta": -1, "reason": "SENSOR", "deviceId": "shelf-7", "seq": 17}')
    assert isinstance(item, StockDelta) and item.idempotency_key == "iot:shelf-7:SKU-1:17"


def test_rejections_name_their_reason() -> None:
    cases = {
        ("iot/inventory/a/b/delta", b'{"delta": 1}'): p.BAD_TOPIC,
        ("iot/inventory/bad sku/delta", b'{"delta": 1}'): p.BAD_TOPIC,
        (TOPIC, b"\xff"): p.NOT_UTF8,
        (TOPIC, b"{"): p.NOT_JSON,
        (TOPIC, b"[1]"): p.NOT_OBJECT,
        (TOPIC, b'{"delta": 1, "qty": 2}'): p.UNKNOWN_FIELD,
        (TOPIC, b'{"delta": 0}'): p.BAD_DELTA,
        (TOPIC, b'{"delta": true}'): p.BAD_DELTA,
        (TOPIC, b'{"delta": 2.0}'): p.BAD_DELTA,
        (TOPIC, b'{"delta": 1000001}'): p.BAD_DELTA,
        (TOPIC, b'{"reason": "SENSOR"}'): p.BAD_DELTA,
        (TOPIC, b'{"delta": 1, "reason": "THEFT"}'): p.BAD_REASON,
        (TOPIC, b'{"delta": 1, "reason": ["SENSOR"]}'): p.BAD_REASON,
        (TOPIC, b'{"delta": 1, "deviceId": "a b", "seq": 1}'): p.BAD_DEVICE_ID,
        (TOPIC, b'{"delta": 1, "deviceId": "d", "seq": -1}'): p.BAD_SEQ,
        (TOPIC, b'{"delta": 1, "deviceId": "d"}'): p.BAD_SEQ,
        (TOPIC, b'{"delta": 1, "seq": 4}'): p.BAD_SEQ,
        (TOPIC, b" " * 5000): p.TOO_LARGE,
        (TOPIC, b"[" * 3000 + b"]" * 1000): p.NOT_JSON,
    }
    for (topic, raw), reason in cases.items():
        result = parse_delta(topic, raw)
        assert isinstance(result, Rejected) and result.reason == reason, (topic, raw[:40], result)


# --- the lanes, with fakes for the API, the dead-letter topic and the MQTT client ---------------


class FakeWriter:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.applied: list[tuple[str, int]] = []

    async def adjust(self, item: StockDelta) -> Written:
        if item.sku == "GONE":
            return Written("unknown-sku", "no product")
        if self.failures:
            self.failures -= 1
            raise ApiUnavailable("connection refused")
        self.applied.append((item.sku, item.delta))
        return Written("applied")


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, letter: DeadLetter) -> None:
        self.sent.append((letter.extra["mqtt.topic"], letter.reason))


class FakeClient:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


def test_lanes_keep_each_skus_order_retry_while_the_api_is_away_and_ack_only_after() -> None:
    async def scenario() -> tuple[FakeWriter, FakeDeadLetters, FakeClient, StockIngest]:
        settings = IotIngestSettings(retry_min_s=0.001, retry_max_s=0.002, concurrency=2)
        writer, dlq, client = FakeWriter(failures=5), FakeDeadLetters(), FakeClient()
        ingest = StockIngest(settings, writer, dlq)  # type: ignore[arg-type]
        ingest.client = client  # type: ignore[assignment]
        ingest._session, ingest.tally.connected = 1, True
        messages = [
            ("A", b'{"delta": -1}'),
            ("B", b'{"delta": 5}'),
            ("A", b'{"delta": -2}'),
            ("GONE", b'{"delta": 1}'),
            ("A", b"nope"),
            ("B", b'{"delta": -3}'),
            ("A", b'{"delta": -4}'),
        ]
        for mid, (sku, raw) in enumerate(messages, start=1):
            ingest._received(Inbound(mid, 1, 1, topic_for(sku), raw))
        ingest._received(Inbound(99, 1, 0, topic_for("A"), b'{"delta": 7}'))  # from a previous connection
        while ingest._draining:
            await asyncio.gather(*ingest._draining)
        return writer, dlq, client, ingest

    writer, dlq, client, ingest = asyncio.run(scenario())
    assert [d for s, d in writer.applied if s == "A"] == [-1, -2, -4, 7]
    assert [d for s, d in writer.applied if s == "B"] == [5, -3]
    assert sorted(dlq.sent) == [(topic_for("A"), p.NOT_JSON), (topic_for("GONE"), "unknown-sku")]
    assert sorted(client.acked) == [1, 2, 3, 4, 5, 6, 7]  # not 99: its connection is gone
    assert ingest.tally.retries == 5 and ingest.tally.applied == 6 and ingest.buffered == 0
    assert ingest.tally.dead_letters == {"not-json": 1, "unknown-sku": 1}
