"""The retry schedule as RabbitMQ sees it: one delay queue per wait (`<prefix>.retry.30s`, messages
expire after the wait and are dead-lettered back to the work exchange), then the DLQ."""

from __future__ import annotations

from dataclasses import dataclass


def delay_name(seconds: float) -> str:
    """30 → "30s", 120 → "2m", 3600 → "1h", 0.5 → "500ms": the suffix of a delay queue."""
    ms = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True)
class RetrySchedule:
    waits: tuple[float, ...]  # seconds before the 1st, 2nd, ... retry
    prefix: str = "webhooks"

    @property
    def max_attempts(self) -> int:
        """The first attempt and one per wait."""
        return 1 + len(self.waits)

    @property
    def work_exchange(self) -> str:
        return f"{self.prefix}.work"

    @property
    def work_queue(self) -> str:
        return f"{self.prefix}.work"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    def delay_queue(self, wait: float) -> str:
        return f"{self.prefix}.retry.{delay_name(wait)}"

    @property
    def delay_queues(self) -> list[tuple[str, int]]:
        """(queue, TTL in ms) of each distinct wait."""
        seen: dict[str, int] = {}
        for wait in self.waits:
            seen.setdefault(self.delay_queue(wait), round(wait * 1000))
        return list(seen.items())

    def after_failure(self, attempt: int) -> str | None:
        """Where a delivery goes when attempt number `attempt` (1-based) failed: the delay queue
        before the next attempt, or None when it was the last one (the DLQ)."""
        if attempt < 1:
            raise ValueError(f"attempts are numbered from 1, not {attempt}")
        if attempt > len(self.waits):
            return None
        return self.delay_queue(self.waits[attempt - 1])
