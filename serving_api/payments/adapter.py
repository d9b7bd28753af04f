"""The payment adapter (seed: payment-adapter-service): the legacy SOAP gateway first, retried with
backoff behind a circuit breaker; the REST gateway when the circuit is open or SOAP is exhausted.
A decline is an answer (no retry, no fallback); a refusal of the request itself is PaymentRefused."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import pybreaker
from prometheus_client import Counter, Histogram

from serving_api.payments.legacy_soap import GatewayFailure
from serving_api.payments.resilience import Backoff, Clock, Sleep, Uniform
from serving_api.payments.rest import PaymentResult
from shopstream.domain import Money, PaymentRefused, Unavailable

log = logging.getLogger("shopstream.payments")

SOAP, REST = "soap-legacy", "rest-sim"
PAYMENT_ATTEMPTS = Counter(
    "payment_attempts_total",
    "Requests to a payment gateway by path (soap-legacy, rest-sim) and outcome "
    "(approved, declined, refused, timeout, fault, transport, failed)",
    ["path", "outcome"],
)
PAYMENT_FALLBACKS = Counter(
    "payment_fallbacks_total", "Payments sent to the REST gateway, by why (circuit-open, soap-exhausted)", ["reason"]
)
PAYMENT_LATENCY = Histogram(
    "payment_call_latency_ms",
    "A payment capture from first attempt to answer, ms, by the path that answered (none: both failed)",
    ["path"],
    buckets=(1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000, 10000, 20000),
)


class Gateway(Protocol):
    name: str

    async def capture(self, order_id: str, amount: Money) -> PaymentResult: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class PaymentOutcome:
    """What the adapter got: APPROVED/DECLINED by `gateway` (the path used), or FAILED on both paths."""

    status: Literal["APPROVED", "DECLINED", "FAILED"]
    gateway: str  # soap-legacy | rest-sim (for FAILED: the last path tried)
    payment_id: str | None
    reason: str | None
    soap_attempts: int  # SOAP requests made (0: the circuit was open)
    fallback: str | None  # why REST was used: circuit-open | soap-exhausted; None when SOAP answered

    @property
    def approved(self) -> bool:
        return self.status == "APPROVED"


def _answered(result: PaymentResult, soap_attempts: int, fallback: str | None) -> PaymentOutcome:
    status: Literal["APPROVED", "DECLINED"] = "APPROVED" if result.approved else "DECLINED"
    return PaymentOutcome(status, result.gateway, result.payment_id, result.reason, soap_attempts, fallback)


class PaymentAdapter:
    def __init__(
        self,
        soap: Gateway,
        rest: Gateway,
        breaker: pybreaker.CircuitBreaker,
        backoff: Backoff,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        uniform: Uniform = random.uniform,
    ) -> None:
        self.soap, self.rest, self.breaker, self.backoff = soap, rest, breaker, backoff
        self._clock, self._sleep, self._uniform = clock, sleep, uniform

    async def close(self) -> None:
        await self.soap.close()
        await self.rest.close()

    async def capture(self, order_id: str, amount: Money) -> PaymentOutcome:
        """Capture `amount` for the order: SOAP (retried, behind the breaker), else REST."""
        started = self._clock()
        failures: list[str] = []
        fallback = "soap-exhausted"
        for attempt in range(1, self.backoff.attempts + 1):
            if attempt > 1:
                await self._sleep(self.backoff.delay(attempt - 1, self._uniform))
            try:
                with self.breaker.calling():  # raises CircuitBreakerError while open, without calling
                    result = await self.soap.capture(order_id, amount)
            except pybreaker.CircuitBreakerError:
                fallback = "circuit-open"
                break
            except PaymentRefused:
                PAYMENT_ATTEMPTS.labels(SOAP, "refused").inc()
                raise
            except GatewayFailure as exc:
                PAYMENT_ATTEMPTS.labels(SOAP, exc.kind).inc()
                failures.append(str(exc))
                log.warning(
                    "SOAP payment attempt %d/%d failed: %s",
                    attempt,
                    self.backoff.attempts,
                    exc,
                    extra={"orderId": order_id},
                )
                if self.breaker.current_state == pybreaker.STATE_OPEN and attempt < self.backoff.attempts:
                    fallback = "circuit-open"  # this run of failures opened it: no point in waiting
                    break
                continue
            PAYMENT_ATTEMPTS.labels(SOAP, "approved" if result.approved else "declined").inc()
            PAYMENT_LATENCY.labels(SOAP).observe((self._clock() - started) * 1000)
            return _answered(result, len(failures) + 1, None)
        return await self._fall_back(order_id, amount, started, failures, fallback)

    async def _fall_back(
        self, order_id: str, amount: Money, started: float, failures: list[str], fallback: str
    ) -> PaymentOutcome:
        PAYMENT_FALLBACKS.labels(fallback).inc()
        soap_said = f"SOAP {fallback}" + (
            f" after {len(failures)} attempt(s), last: {failures[-1]}" if failures else ""
        )
        log.warning("payment falls back to REST: %s", soap_said, extra={"orderId": order_id})
        try:
            result = await self.rest.capture(order_id, amount)
        except PaymentRefused:  # the request itself was refused
            PAYMENT_ATTEMPTS.labels(REST, "refused").inc()
            raise
        except Unavailable as exc:
            PAYMENT_ATTEMPTS.labels(REST, "failed").inc()
            PAYMENT_LATENCY.labels("none").observe((self._clock() - started) * 1000)
            log.error("payment failed on both paths", extra={"orderId": order_id})
            reason = f"{soap_said}; REST: {exc.detail or exc.title}"
            return PaymentOutcome("FAILED", REST, None, reason, len(failures), fallback)
        PAYMENT_ATTEMPTS.labels(REST, "approved" if result.approved else "declined").inc()
        PAYMENT_LATENCY.labels(REST).observe((self._clock() - started) * 1000)
        return _answered(result, len(failures), fallback)
