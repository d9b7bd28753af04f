"""Webhook dispatch throughput (issue 8): deliveries/s from Kafka events to a local receiver.

N order.paid events are produced to topics of the bench's own, one subscription takes them; then
a fan-out and a dispatcher of the bench's own (the stack's code, on queues of their own) start on
that backlog: Kafka → deliveries in RabbitMQ (persistent, confirmed) → signed POSTs to a receiver
in this process (asyncio, HTTP/1.1 keep-alive, checks every signature) → each attempt recorded in
Postgres before the ack. Throughput is counted from the first POST received to the last."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg
from confluent_kafka import Producer
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from shopstream.domain import envelope, event_type  # noqa: E402
from shopstream.runtime.topics import create_event_topics  # noqa: E402
from shopstream.serde import AvroSerde, RegistryClient  # noqa: E402
from webhooks import RetrySchedule, verify  # noqa: E402
from webhooks.subscriptions import create_subscription  # noqa: E402

console = Console()
PAID = event_type("ecommerce.order.order.paid.v1")


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.times: list[float] = []
        self.bad = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                ok = verify(
                    self.secret,
                    headers.get("x-bv-timestamp", ""),
                    body,
                    headers.get("x-bv-signature", ""),
                    now=time.time(),
                )
                self.times.append(time.perf_counter())
                self.bad += not ok
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" if ok else b"HTTP/1.1 401 No\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def produce(settings: StackSettings, topic: str, n: int) -> None:
    registry = RegistryClient(settings.registry.url)
    serde = AvroSerde(registry)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for i in range(n):
        order = f"ORD-bench-{i}"
        payload = {
            "orderId": order,
            "userId": "USER-bench",
            "paymentId": f"PAY-{i}",
            "amount": {"amountMinor": 1000 + i, "currency": "USD"},
            "paidAt": datetime.now(UTC),
        }
        record = envelope(PAID, payload, producer="bench", correlation_id="bench", trace_id=uuid.uuid4().hex)
        producer.produce(topic, key=order, value=serde.encode(PAID.subject, record))
        producer.poll(0)
    assert producer.flush(60) == 0
    registry.close()


async def bench(settings: StackSettings, n: int, concurrency: int, timeout: float) -> dict[str, float]:
    prefix = f"bench-wh-{uuid.uuid4().hex[:8]}"
    receiver = Receiver("")
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = await asyncpg.connect(settings.postgres.dsn)
    async with conn.transaction():
        sub = await create_subscription(
            conn, "bench", "bench", f"http://127.0.0.1:{port}/hook", [PAID.name], None, allow_private_targets=True
        )
    receiver.secret = sub["secret"]
    create_event_topics(settings.kafka.bootstrap, prefix + ".")
    await asyncio.to_thread(produce, settings, f"{prefix}.{PAID.topic}", n)
    own = {
        "POSTGRES__DSN": settings.postgres.dsn,
        "KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "REGISTRY__URL": settings.registry.url,
        "RABBITMQ__URL": settings.rabbitmq.url,
        "QUEUE_PREFIX": prefix,
        "TOPIC_PREFIX": prefix + ".",
        "CONSUMER_GROUP": prefix,
        "METRICS__PORT": "0",
        "CONCURRENCY": str(concurrency),
    }
    env = {
        **os.environ,
        **{
            p + k: v for p in ("SHOPSTREAM_WEBHOOK_FANOUT__", "SHOPSTREAM_WEBHOOK_DISPATCHER__") for k, v in own.items()
        },
    }
    logs = Path(tempfile.mkdtemp(prefix="webhooks-bench-"))
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", f"webhooks.{which}"],
            env=env,
            stdout=(logs / f"{which}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for which in ("dispatcher", "fanout")
    ]
    rows = 0
    try:
        deadline = time.monotonic() + timeout
        while len(receiver.times) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        # every POST recorded before its ack: wait for the rows too
        while time.monotonic() < deadline:
            rows = await conn.fetchval(
                "SELECT count(*) FROM webhook_delivery_attempts WHERE subscription_id = $1", sub["id"]
            )
            if rows >= n:
                break
            await asyncio.sleep(0.2)
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(30)
        await conn.execute("UPDATE webhook_subscriptions SET deleted_at = now() WHERE id = $1", sub["id"])
        await conn.close()
        server.close()
        connection = await aio_pika.connect(settings.rabbitmq.url)
        async with connection:
            channel = await connection.channel()
            schedule = RetrySchedule((30, 120, 300, 900, 1800), prefix)
            for name in [schedule.work_queue, schedule.dlq, *(q for q, _ in schedule.delay_queues)]:
                await channel.queue_delete(name)
            await channel.exchange_delete(schedule.work_exchange)
    got = len(receiver.times)
    if got < n:
        raise SystemExit(f"only {got}/{n} deliveries within {timeout:.0f}s; logs in {logs}")
    span = receiver.times[-1] - receiver.times[0]
    return {"n": n, "seconds": span, "rate": (n - 1) / span, "bad": receiver.bad, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    settings = StackSettings()
    result = asyncio.run(bench(settings, args.deliveries, args.concurrency, args.timeout))
    line = (
        f"{result['rate']:.0f} deliveries/s: {result['n']:.0f} deliveries in {result['seconds']:.1f} s "
        f"(concurrency {args.concurrency}), {result['bad']:.0f} bad signatures, {result['rows']:.0f} attempts recorded"
    )
    console.print(line)
    if args.report:
        body = (
            "## Webhook dispatch throughput\n\n"
            f"{conditions()}\n\n"
            "Kafka backlog of order.paid events → the fan-out (deliveries persistent + publisher-confirmed in "
            "RabbitMQ, offsets committed after) → the dispatcher (signed POST, the attempt recorded in Postgres, "
            "then the ack) → a local asyncio receiver checking every signature; counted from the first POST to "
            "the last, beside the whole stack on the same machine.\n\n"
            f"| deliveries | concurrency | seconds | deliveries/s |\n|---|---|---|---|\n"
            f"| {result['n']:.0f} | {args.concurrency} | {result['seconds']:.1f} | {result['rate']:.0f} |\n"
        )
        write_section(args.report, "webhooks", body)
        console.print(f"wrote the webhooks section of {args.report}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
