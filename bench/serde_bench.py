"""Serde throughput (issue 3): encode+decode of the order.created event, ours against
confluent-kafka's AvroSerializer/AvroDeserializer, same process, same record, same registry."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from shopstream.contracts.files import find_schema_file  # noqa: E402
from shopstream.serde import AvroSerde, RegistryClient  # noqa: E402

console = Console()
CREATED = find_schema_file("ecommerce.order.order.created.v1")


def record() -> dict[str, Any]:
    return {
        "eventId": str(uuid.uuid4()),
        "eventType": CREATED.topic,
        "occurredAt": datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        "producer": "order-service",
        "traceId": uuid.uuid4().hex,
        "correlationId": str(uuid.uuid4()),
        "schemaVersion": "1.0",
        "partitionKey": "ORDER-123",
        "payload": {
            "orderId": "ORDER-123",
            "userId": "USER-9",
            "totalAmount": {"amountMinor": 12950, "currency": "USD"},
            "items": [
                {"productId": f"P{i}", "qty": 2, "unitPrice": {"amountMinor": 2500, "currency": "USD"}}
                for i in range(3)
            ],
        },
    }


def rate(round_trip: Callable[[], object], seconds: float, repeats: int) -> float:
    """Median events/s of `repeats` timed runs of about `seconds` each."""
    results = []
    for _ in range(repeats):
        n, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(500):
                round_trip()
            n += 500
        results.append(n / elapsed)
    return statistics.median(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    url = StackSettings().registry.url
    topic = f"bench.serde.{uuid.uuid4().hex[:8]}"
    subject = f"{topic}-value"
    rec = record()

    with SchemaRegistryClient({"url": url}) as client, RegistryClient(url) as registry:
        ctx = SerializationContext(topic, MessageField.VALUE)
        serializer, deserializer = AvroSerializer(client, CREATED.text), AvroDeserializer(client)
        ours = AvroSerde(registry)
        ours.use(subject, CREATED.text)
        assert ours.encode(subject, rec) == serializer(rec, ctx)  # same bytes, so the same work

        def confluent() -> object:
            return deserializer(serializer(rec, ctx), ctx)

        def shopstream() -> object:
            return ours.decode(ours.encode(subject, rec))

        confluent(), shopstream()
        with console.status("serde: confluent-kafka"):
            theirs_rate = rate(confluent, args.seconds, args.repeats)
        with console.status("serde: shopstream"):
            ours_rate = rate(shopstream, args.seconds, args.repeats)

    size = len(ours.encode(subject, rec))
    ratio = ours_rate / theirs_rate
    body = "\n".join(
        [
            "## Serde (issue 3)",
            "",
            f"Conditions: {conditions()}. One thread; encode then decode of one order.created event "
            f"({size} bytes in the wire format, 3 items) per round trip; median of {args.repeats} runs of "
            f"{args.seconds:.0f} s; schema ids cached on both sides (the registry is asked once).",
            "",
            "| serde | encode+decode events/s |",
            "|---|---|",
            f"| confluent-kafka AvroSerializer + AvroDeserializer | {theirs_rate:,.0f} |",
            f"| shopstream AvroSerde | {ours_rate:,.0f} |",
            f"| ratio | {ratio:.2f}× (goal ≥ 2×: {'met' if ratio >= 2 else 'MISSED'}) |",
        ]
    )
    write_section(args.report, "serde", body)
    console.print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
