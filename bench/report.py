"""bench/RESULTS.md is made of sections, one per benchmark; each run rewrites only its own."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psutil

HEADER = "# Benchmark results\n\n`make bench` writes this file; each section says what it measured and how.\n"


def conditions() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {platform.platform()}, "
        f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 1024**3:.0f} GiB RAM, "
        f"Python {platform.python_version()}"
    )


def write_section(report: Path, name: str, body: str) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = report.read_text() if report.exists() else HEADER
    if not text.startswith("# Benchmark results"):
        text = HEADER
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    report.write_text(text)
