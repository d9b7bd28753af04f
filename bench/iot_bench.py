"""IoT ingest throughput (needs the stack, with `mosquitto` and `iot-ingest` up): MQTT messages/s
to Kafka.

N numbered SENSOR deltas (QoS 1, one persistent MQTT connection, as fast as the broker takes them)
for K products created through the API; the clock runs from the first publish until the N
stock.adjusted events they cause are readable on the Kafka topic (ingest → REST adjustment with
its idempotency key → Postgres + outbox → Debezium → Kafka). The ingest runs as the stack runs it."""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.simulators.devices import DeviceGateway  # noqa: E402
from dev.stack import StackSettings  # noqa: E402
from ingest.settings import IotIngestSettings  # noqa: E402
from serving_api.auth.tokens import issue_token  # noqa: E402
from serving_api.settings import ApiSettings  # noqa: E402
from shopstream.domain import event_type  # noqa: E402
from shopstream.serde import AvroSerde, RegistryClient  # noqa: E402

console = Console()
ADJUSTED = event_type("ecommerce.inventory.stock.adjusted.v1")
WHERE_THE_TIME_GOES = (
    "Where the time goes: the writers' path, one REST call per delta (OPA decision, one transaction with the "
    "idempotency key, the adjustment and its outbox row) on one API process; the ingest itself spends ~2.4 ms of "
    "CPU per message (mostly httpx). Coalescing deltas into one adjustment would lift this but lose the "
    "per-message idempotency key; more API workers are the lever."
)


def create_products(api_url: str, count: int) -> dict[str, str]:
    """sku -> product id of `count` new products with plenty of stock."""
    admin = {"Authorization": f"Bearer {issue_token(ApiSettings(), 'USER-bench-admin', ['ADMIN'])}"}
    out = {}
    with httpx.Client(base_url=api_url, timeout=30) as http:
        for _ in range(count):
            sku = f"IOT-BENCH-{uuid.uuid4().hex[:10]}"
            body = {"sku": sku, "name": "Bench shelf item", "price": {"amount": "9.99", "currency": "USD"}}
            answer = http.post("/api/v1/products", headers=admin, json={**body, "stock": 1_000_000})
            answer.raise_for_status()
            out[sku] = str(answer.json()["id"])
    return out


class AdjustedCounter(threading.Thread):
    """Counts SENSOR stock.adjusted events of the given products from the topic's end onwards."""

    def __init__(self, settings: StackSettings, products: set[str], want: int) -> None:
        super().__init__(daemon=True)
        self.products, self.want, self.count, self.done_at = products, want, 0, 0.0
        self.serde = AvroSerde(RegistryClient(settings.registry.url))
        self.consumer = Consumer(
            {"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"iot-bench-{uuid.uuid4().hex[:6]}"}
        )
        partitions = self.consumer.list_topics(ADJUSTED.topic, timeout=10).topics[ADJUSTED.topic].partitions
        self.consumer.assign([TopicPartition(ADJUSTED.topic, p, OFFSET_END) for p in partitions])
        self.ready = threading.Event()

    def run(self) -> None:
        while self.count < self.want:
            msg = self.consumer.poll(0.2)
            self.ready.set()
            if msg is None or msg.error():
                continue
            _, event = self.serde.decode(msg.value())
            payload = event["payload"]
            if payload["productId"] in self.products and payload["reason"] == "SENSOR":
                self.count += 1
        self.done_at = time.monotonic()
        self.consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    settings = StackSettings()
    ingest = IotIngestSettings()
    before = httpx.get(ingest.url + "/health", timeout=5).json()
    products = create_products(settings.api.url, args.products)
    skus = sorted(products)
    counter = AdjustedCounter(settings, set(products.values()), args.messages)
    counter.start()
    counter.ready.wait(30)
    time.sleep(1)  # the creations' own events pass first (they are RESTOCK anyway)
    gateway = DeviceGateway(settings.mosquitto.host, settings.mosquitto.port)
    console.print(f"publishing {args.messages:,} deltas for {len(skus)} products")
    started = time.monotonic()
    for i in range(args.messages):
        gateway.publish(skus[i % len(skus)], -1, "SENSOR", device=f"shelf-{i % 10}")
    assert gateway.wait_acknowledged(args.timeout), "the broker did not acknowledge everything"
    published_s = time.monotonic() - started
    counter.join(args.timeout)
    gateway.close()
    if counter.count < args.messages:
        console.print(f"[red]only {counter.count} of {args.messages} stock.adjusted events within the timeout[/red]")
        return 1
    elapsed = counter.done_at - started
    after = httpx.get(ingest.url + "/health", timeout=5).json()
    rate = args.messages / elapsed
    console.print(f"{rate:,.0f} messages/s MQTT → Kafka ({elapsed:.1f} s; published in {published_s:.1f} s)")
    body = [
        "## IoT ingest (`bench/iot_bench.py`)",
        "",
        conditions(),
        "",
        f"{args.messages:,} numbered SENSOR deltas (QoS 1, one persistent MQTT connection, published as fast as "
        f"the broker acknowledges them) for {len(skus)} products; from the first publish until the "
        f"{args.messages:,} stock.adjusted events they cause are readable on Kafka (ingest → REST adjustment with "
        "its Idempotency-Key → Postgres + outbox → Debezium → Kafka). The ingest as the stack runs it "
        f"({ingest.concurrency} adjustments in flight, one API process).",
        "",
        f"- MQTT ingest to Kafka: **{rate:,.0f} messages/s** ({elapsed:.1f} s for {args.messages:,})",
        f"- publishing alone (broker acknowledgements): {args.messages / published_s:,.0f} messages/s",
        f"- the ingest meanwhile: {after['applied'] - before['applied']:,} applied, "
        f"{after['replayed'] - before['replayed']} replayed, {after['retries'] - before['retries']} retries",
        "",
        WHERE_THE_TIME_GOES,
    ]
    write_section(args.report, "iot", "\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
