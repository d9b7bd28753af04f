"""Small helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(check: Callable[[], Any], timeout: float = 30, what: str | Callable[[], str] = "") -> Any:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout` s saying
    `what` (a callable is called then: the state at the failure, not at the start)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what() if callable(what) else what}")
        time.sleep(0.1)


def stock_adjusted(
    product_id: str, delta: int, reason: str, on_hand: int, reserved: int, version: int
) -> dict[str, Any]:
    """A stock.adjusted 1.1 payload with the stock's after-state."""
    return {
        "productId": product_id,
        "delta": delta,
        "reason": reason,
        "orderId": None,
        "available": on_hand - reserved,
        "onHand": on_hand,
        "reserved": reserved,
        "stockVersion": version,
    }


class FakeClock:
    """Monotonic seconds that only move when the code under test sleeps (recorded) or the test
    moves `now`: backoff and circuit-breaker intervals without waiting for them."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
