"""The SOAP path's resilience: exponential backoff with full jitter, and a pybreaker circuit breaker
whose open interval is measured on an injectable monotonic clock, with its state and transitions
as metrics and logs.

The breaker's window: pybreaker counts *consecutive* failed calls (any success resets the count) and
opens at `fail_max`. Each SOAP attempt is one call, so the window is the last `fail_max` attempts,
all failed; the default (10) is two captures' worth of attempts, so one order's retries alone never
open it for everybody. That is the conservative choice the seed asks for against thrashing: scattered
failures (a flaky gateway that mostly answers) never open it, only a run of failures does; it then stays open
`reset_timeout` seconds, and half-open it needs `success_threshold` successes in a row to close (one
failure opens it again for another `reset_timeout`)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pybreaker
from prometheus_client import Counter, Gauge

log = logging.getLogger("shopstream.payments")

Clock = Callable[[], float]  # monotonic seconds
Sleep = Callable[[float], Awaitable[None]]
Uniform = Callable[[float, float], float]

STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}
CIRCUIT_STATE = Gauge("payment_circuit_state", "The SOAP payment circuit: 0 closed, 1 half-open, 2 open")
CIRCUIT_TRANSITIONS = Counter(
    "payment_circuit_transitions_total", "Transitions of the SOAP payment circuit", ["from", "to"]
)


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries; before try n+1 (n from 1) a wait of uniform(0, min(cap, base * 2**(n-1)))."""

    attempts: int = 5
    base: float = 0.1
    cap: float = 2.0

    def delay(self, retry: int, uniform: Uniform = random.uniform) -> float:
        """The wait before retry number `retry` (1 = the second attempt): full jitter."""
        return uniform(0.0, min(self.cap, self.base * 2 ** (retry - 1)))


class ClockedStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker decides that `reset_timeout` has passed by comparing `datetime.now(UTC)` with
    `opened_at`. This storage measures how long the circuit has been open on our monotonic clock and
    reports `opened_at` as that long before now: the decision follows the injected clock (tests
    advance it instead of waiting 30 s) and a wall-clock jump cannot shorten or stretch an open circuit."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._clock = clock
        self._opened_tick: float | None = None

    @property
    def opened_at(self) -> datetime | None:
        if self._opened_tick is None:
            return None
        return datetime.now(UTC) - timedelta(seconds=self._clock() - self._opened_tick)

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:  # pybreaker passes datetime.now(UTC); we keep our tick
        self._opened_tick = self._clock()


class CircuitObserver(pybreaker.CircuitBreakerListener):
    """Every transition: the state gauge, the transitions counter and one log line."""

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else "none"
        CIRCUIT_STATE.set(STATE_VALUES[new_state.name])
        CIRCUIT_TRANSITIONS.labels(old, new_state.name).inc()
        level = logging.WARNING if new_state.name != pybreaker.STATE_CLOSED else logging.INFO
        log.log(
            level,
            "payment circuit %s: %s -> %s (consecutive failures %d)",
            cb.name,
            old,
            new_state.name,
            cb.fail_counter,
        )


def circuit_breaker(
    name: str,
    fail_max: int,
    reset_timeout: float,
    success_threshold: int,
    clock: Clock = time.monotonic,
    exclude: list[Any] | None = None,
) -> pybreaker.CircuitBreaker:
    """A breaker that re-raises the failure that tripped it (so the caller sees why) and counts only
    system errors: `exclude` lists business outcomes (they count as successes)."""
    CIRCUIT_STATE.set(0)
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout,
        success_threshold=success_threshold,
        exclude=exclude or [],
        listeners=[CircuitObserver()],
        state_storage=ClockedStorage(clock),
        name=name,
        throw_new_error_on_trip=False,
    )
