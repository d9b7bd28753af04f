"""`shopstream replay ... olap_landing`: the replay commands for the OLAP landing, carried out by
the OLAP service (`olap.rebuild`: the store is the service's own), with the answers shaped as the
kernel projections' (`streams.replay.service.Replays`) so that the commands print them alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dev.stack.settings import StackSettings
from olap.client import OlapClient
from olap.rebuild import NAME
from streams.replay.service import ReplayError

Progress = Callable[[int, int], None] | None
OVER = ("promoted", "retired", "dropped")


@dataclass(frozen=True)
class _Projection:
    seeds: dict[str, Any] = field(default_factory=dict)  # the landing re-reads no Postgres table


@dataclass
class OlapRecord:
    generation: int
    status: str
    stats: dict[str, Any]
    previous: Any = None
    seed_signal: str | None = None


class OlapReplays:
    """The OLAP landing's generations, through the OLAP service's API."""

    projection = _Projection()

    def __init__(self, client: OlapClient | None = None) -> None:
        self.client = client or OlapClient(StackSettings().olap.url)

    def _generation(self, generation: int | None) -> int:
        if generation is not None:
            return generation
        found = [r for r in self.client.rebuilds()["replays"] if r["status"] not in OVER]
        if not found:
            raise ReplayError(f"{NAME} has no generation to act on: `shopstream replay run {NAME}` first")
        return int(found[-1]["generation"])

    def plan(self, since_ms: int | None) -> dict[str, Any]:
        if since_ms is not None:
            raise ReplayError(f"{NAME} is rebuilt from the start of the retained log: --since is for the projections")
        return self.client.rebuild_plan()

    def run(
        self,
        since_ms: int | None,
        progress: Progress = None,
        reseed: bool = False,
        snapshot: Any = None,
        max_rate: int | None = None,
    ) -> OlapRecord:
        if since_ms is not None or reseed:
            raise ReplayError(f"{NAME} lands the retained log as it is: no --since, no --reseed")
        n = int(self.client.rebuild_start(max_rate)["generation"])  # or the unfinished one, continuing
        while True:
            found = next(r for r in self.client.rebuilds()["replays"] if r["generation"] == n)
            if progress is not None:
                progress(int(found["records"]), int(found["of"]))
            if found["status"] != "running":
                break
            if found["error"]:
                raise ReplayError(f"{NAME} generation {n} stopped: {found['error']} (run again to continue)")
            time.sleep(0.5)
        s = found["stats"]
        stats = {
            "read": s.get("read", 0),
            "wallSeconds": s.get("wallSeconds", 0.0),
            "writes": sum(s.get("landed", {}).values()),
            "withheld": 0,
            "deadLetters": s.get("badRecords", 0),
            "landed": s.get("landed", {}),
        }
        return OlapRecord(n, found["status"], stats)

    def verify(self, generation: int | None, live_stopped: bool, wait: float, progress: Progress = None) -> Any:
        return self.client.rebuild_verify(self._generation(generation), wait)

    def promote(
        self, generation: int | None, accept_differences: bool, live_stopped: bool, wait: float, progress: Progress
    ) -> OlapRecord:
        g = self.client.rebuild_promote(self._generation(generation), accept_differences, wait)
        previous = {"clickhouse": f"raw_r{g['previous']}"}
        return OlapRecord(int(g["generation"]), g["status"], g["stats"], previous)

    def drop(self, generation: int) -> dict[str, Any]:
        return self.client.rebuild_drop(generation)

    def status(self) -> dict[str, Any]:
        return self.client.rebuilds()

    def explain(self, key: str) -> dict[str, Any]:
        raise ReplayError(
            f"explain is for the projections: every row of {NAME} says the record it came from itself"
            " (_topic, _partition, _offset)"
        )
