"""The one dead-letter format: the record's own headers first, then why and where from."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shopstream.runtime.dead_letters import MAX_TEXT, DeadLetter


def test_a_kafka_records_letter_names_its_consumer_reason_and_position_after_its_own_headers() -> None:
    letter = DeadLetter(
        "revenue_windows", "SerdeError: bad magic byte", b"\x01", b"O-1", ("t", 2, 40), headers=[("traceparent", b"00")]
    )
    assert letter.kafka_headers() == [
        ("traceparent", b"00"),
        ("dlq.reason", b"SerdeError: bad magic byte"),
        ("dlq.dataflow", b"revenue_windows"),
        ("dlq.topic", b"t"),
        ("dlq.partition", b"2"),
        ("dlq.offset", b"40"),
    ]


def test_a_letter_from_outside_kafka_carries_its_detail_and_the_sources_own_names() -> None:
    letter = DeadLetter("iot_ingest", "unknown-sku", b"{}", b"SKU-1", detail="no product", extra={"mqtt.topic": "s/1"})
    assert letter.kafka_headers() == [
        ("dlq.reason", b"unknown-sku"),
        ("dlq.detail", b"no product"),
        ("dlq.dataflow", b"iot_ingest"),
        ("mqtt.topic", b"s/1"),
    ]


@given(st.text(min_size=0, max_size=3000), st.text(min_size=0, max_size=3000))
def test_reason_and_detail_are_bounded(reason: str, detail: str) -> None:
    headers = dict(DeadLetter("x", reason, None, detail=detail).kafka_headers())
    assert len(headers["dlq.reason"]) <= MAX_TEXT and headers["dlq.reason"] == reason.encode()[:MAX_TEXT]
    assert len(headers.get("dlq.detail", b"")) <= MAX_TEXT
