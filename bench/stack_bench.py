"""Figures of the local stack (issue 2): cold `setup`+`up`, warm `up`, idle RSS.

Runs a second, throw-away stack beside any dev stack: its own SHOPSTREAM_HOME in a temp folder and
every port shifted by --port-offset, so nothing of the developer's is touched. "Cold" starts from an
empty home and an empty Maven repository (every jar downloaded from Maven Central); the Debian
packages are already installed (apt is not re-run). "Warm" is `down` then `up` with everything in place.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import conditions, write_section  # noqa: E402

from dev.stack import StackSettings  # noqa: E402
from dev.stack.stack import Stack  # noqa: E402

console = Console()
SHOPSTREAM = str(Path(sys.prefix) / "bin" / "shopstream")


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.monotonic() - started


def rss_by_component(stack: Stack) -> dict[str, int]:
    out = {}
    for s in stack.status():
        if s.pid is None:
            continue
        proc = psutil.Process(s.pid)
        out[s.name] = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--port-offset", type=int, default=20000)
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="shopstream-bench-"))
    m2 = Path(tempfile.mkdtemp(prefix="shopstream-bench-m2-"))
    os.chmod(home, 0o755)
    o = args.port_offset
    ports = {  # every port the stack takes, shifted
        "SHOPSTREAM_POSTGRES__PORT": 5432,
        "SHOPSTREAM_REDIS__PORT": 6379,
        "SHOPSTREAM_CASSANDRA__PORT": 9042,
        "SHOPSTREAM_CASSANDRA__STORAGE_PORT": 7000,
        "SHOPSTREAM_OPENSEARCH__PORT": 9200,
        "SHOPSTREAM_OPENSEARCH__TRANSPORT_PORT": 9300,
        "SHOPSTREAM_KAFKA__PORT": 9092,
        "SHOPSTREAM_KAFKA__CONTROLLER_PORT": 9093,
        "SHOPSTREAM_CONNECT__PORT": 8083,
        "SHOPSTREAM_OPA__PORT": 8181,
        "SHOPSTREAM_RABBITMQ__PORT": 5672,
        "SHOPSTREAM_RABBITMQ__DIST_PORT": 25672,
        "SHOPSTREAM_MOSQUITTO__PORT": 1883,
        "SHOPSTREAM_STACK__REGISTRY__PORT": 8081,
        "SHOPSTREAM_STACK__API__PORT": 8000,
        "SHOPSTREAM_STACK__API__GRPC_PORT": 50051,
        "SHOPSTREAM_STACK__API__PAYMENT_PORT": 8090,
        "SHOPSTREAM_STACK__API__SOAP_PAYMENT_PORT": 8091,
        "SHOPSTREAM_STACK__OLAP__PORT": 8124,
        "SHOPSTREAM_IOT_INGEST__LISTEN__PORT": 8097,
        "SHOPSTREAM_WEBHOOK_DISPATCHER__METRICS__PORT": 9465,
    }
    env = {
        **os.environ,
        "SHOPSTREAM_HOME": str(home),
        # (down instead of up where up would pass 65535)
        **{name: str(port + o if port + o <= 65_535 else port - o) for name, port in ports.items()},
        "MAVEN_OPTS": f"-Dmaven.repo.local={m2}",  # cold: nothing cached
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("SHOPSTREAM_")})
    settings = StackSettings()  # the same shifted ports, read from the environment
    stack = Stack(settings)
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("cold setup", total=3 + args.warm_runs)
            cold_setup = timed([SHOPSTREAM, "setup"], env)
            progress.update(task, advance=1, description="cold up")
            cold_up = timed([SHOPSTREAM, "up"], env)
            progress.update(task, advance=1, description=f"idle {args.idle_seconds:.0f}s")
            time.sleep(args.idle_seconds)
            per_component = rss_by_component(stack)
            idle_total = stack.resident_memory_bytes()
            progress.update(task, advance=1, description="warm up")
            warm = []
            for _ in range(args.warm_runs):
                timed([SHOPSTREAM, "down"], env)
                warm.append(timed([SHOPSTREAM, "up"], env))
                progress.update(task, advance=1)
    finally:
        subprocess.run([SHOPSTREAM, "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(m2, ignore_errors=True)

    gib = 1024**3
    rows = [
        ("cold `setup` (empty home, empty Maven repo)", f"{cold_setup:.1f} s", ""),
        ("cold `up` (initdb, Kafka format, first start)", f"{cold_up:.1f} s", ""),
        ("cold `setup` + `up`", f"{cold_setup + cold_up:.1f} s", ""),
        (
            f"warm `up` to all-healthy (median of {len(warm)})",
            f"{statistics.median(warm):.1f} s",
            f"goal ≤ 45 s (issue 15): {'met' if statistics.median(warm) <= 45 else '**not met**'}",
        ),
        (
            f"idle RSS, whole stack ({args.idle_seconds:.0f} s after healthy)",
            f"{idle_total / gib:.2f} GiB",
            f"goal ≤ 4 GiB (issue 15): {'met' if idle_total <= 4 * gib else '**not met**'}",
        ),
    ]
    rows += [(f"idle RSS, {name}", f"{rss / 1024**2:.0f} MiB", "") for name, rss in per_component.items()]
    body = "\n".join(
        [
            "## Local stack (issues 2, 15)",
            "",
            f"Conditions: {conditions()}; a throw-away stack beside the dev one (own SHOPSTREAM_HOME, ports "
            f"shifted by {o}); Debian packages already installed; cold = empty SHOPSTREAM_HOME and an empty "
            "Maven repository (every jar downloaded).",
            "",
            "| figure | measured | goal |",
            "|---|---|---|",
            *[f"| {a} | {b} | {c} |" for a, b, c in rows],
            "",
            f"Warm `up` runs: {', '.join(f'{w:.1f} s' for w in warm)}.",
        ]
    )
    write_section(args.report, "stack", body)
    console.print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
