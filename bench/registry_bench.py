"""Registry latency (issue 3): `GET /schemas/ids/{id}` p50/p99 under an open-loop 1,000 req/s.

The load generator is asyncio over raw HTTP/1.1 keep-alive connections; each request has a
scheduled send time and its latency is measured from that time (so a stall is not hidden by the
generator waiting for it: no coordinated omission). Its own CPU use is reported."""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from shopstream.contracts.files import find_schema_file  # noqa: E402

console = Console()


async def worker(
    host: str, port: int, path: str, schedule: asyncio.Queue[float], out: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode()
    try:
        while True:
            due = await schedule.get()
            if due < 0:
                return
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n")[0].decode())
            out.append(time.perf_counter() - due)
    finally:
        writer.close()


async def run(
    host: str, port: int, path: str, rate: float, seconds: float, connections: int
) -> tuple[list[float], list[str], float]:
    schedule: asyncio.Queue[float] = asyncio.Queue()
    latencies: list[float] = []
    errors: list[str] = []
    workers = [asyncio.create_task(worker(host, port, path, schedule, latencies, errors)) for _ in range(connections)]
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        schedule.put_nowait(due)
    for _ in workers:
        schedule.put_nowait(-1.0)
    await asyncio.gather(*workers)
    return latencies, errors, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    cfg = StackSettings().registry
    schema = find_schema_file("ecommerce.order.order.created.v1")
    schema_id = httpx.post(f"{cfg.url}/subjects/{schema.subject}/versions", json={"schema": schema.text}).json()["id"]
    path = f"/schemas/ids/{schema_id}"
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    with console.status(f"{args.rate:.0f} req/s for {args.seconds:.0f} s on {path}"):
        latencies, errors, elapsed = asyncio.run(
            run(cfg.host, cfg.port, path, args.rate, args.seconds, args.connections)
        )
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / elapsed
    ms = sorted(x * 1000 for x in latencies)
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    body = "\n".join(
        [
            "## Schema registry latency (issue 3)",
            "",
            f"Conditions: {conditions()}. `GET {path}` (the order.created schema, "
            f"{len(schema.text)} bytes as a file) at an open-loop {args.rate:.0f} req/s for {args.seconds:.0f} s over "
            f"{args.connections} keep-alive connections, from a second process on loopback (asyncio); latency "
            "from each request's scheduled send time. The registry is one uvicorn process (uvloop, httptools) "
            "with the whole stack running beside it.",
            "",
            "| figure | measured |",
            "|---|---|",
            f"| requests (errors) | {len(ms):,} ({len(errors)}) |",
            f"| achieved rate | {len(ms) / elapsed:,.0f} req/s |",
            f"| p50 | {p(0.50):.2f} ms |",
            f"| p99 | {p(0.99):.2f} ms (goal < 5 ms: {'met' if p(0.99) < 5 else 'MISSED'}) |",
            f"| p99.9 / max | {p(0.999):.2f} ms / {ms[-1]:.2f} ms |",
            f"| mean | {statistics.mean(ms):.2f} ms |",
            f"| load generator CPU | {cpu * 100:.0f}% of one core |",
        ]
    )
    write_section(args.report, "registry", body)
    console.print(body)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
