"""The payment adapter's logic without I/O: retries with jittered backoff, the circuit breaker (on a
clock the test advances), the REST fallback, declines and refusals."""

from __future__ import annotations

import asyncio

import pybreaker
import pytest
from prometheus_client import REGISTRY

from serving_api.http.problems import problem_for
from serving_api.payments import Backoff, GatewayFailure, PaymentAdapter, PaymentRefused, circuit_breaker
from serving_api.payments.rest import PaymentResult
from shopstream.domain import Money, Unavailable
from tests.support import FakeClock

USD = Money(2500, "USD")


class FakeGateway:
    """Answers from a script: 'ok', 'declined', 'fail', 'timeout', 'refused', 'down' (Unavailable, as
    the REST client raises it)."""

    def __init__(self, name: str, script: list[str] | str = "ok") -> None:
        self.name = name
        self.script = script
        self.calls = 0

    async def close(self) -> None:
        pass

    async def capture(self, order_id: str, amount: Money) -> PaymentResult:
        step = self.script if isinstance(self.script, str) else self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if step == "fail":
            raise GatewayFailure("fault", "SOAP fault Server.Unavailable")
        if step == "timeout":
            raise GatewayFailure("timeout", "SOAP timeout")
        if step == "refused":
            raise PaymentRefused("currency XYZ not supported")
        if step == "down":
            raise Unavailable("connection refused", code="payment-unavailable", title="Payment gateway unavailable")
        return PaymentResult(
            f"{self.name}-{order_id}", step == "ok", None if step == "ok" else "card declined", self.name
        )


def adapter(soap: FakeGateway, rest: FakeGateway, clock: FakeClock, **breaker: float) -> PaymentAdapter:
    cb = circuit_breaker(
        "soap-legacy",
        fail_max=int(breaker.get("fail_max", 5)),
        reset_timeout=breaker.get("reset_timeout", 30.0),
        success_threshold=int(breaker.get("success_threshold", 2)),
        clock=clock,
        exclude=[PaymentRefused],
    )
    return PaymentAdapter(
        soap, rest, cb, Backoff(5, 0.1, 2.0), clock=clock, sleep=clock.sleep, uniform=lambda lo, hi: hi
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_backoff_is_exponential_capped_and_jittered() -> None:
    b = Backoff(attempts=5, base=0.1, cap=0.5)
    assert [b.delay(n, lambda lo, hi: hi) for n in range(1, 5)] == [0.1, 0.2, 0.4, 0.5]
    assert all(0 <= b.delay(3) <= 0.4 for _ in range(200))  # full jitter: anywhere in [0, ceiling]
    assert len({b.delay(3) for _ in range(50)}) > 1


def test_soap_answers_first_time() -> None:
    clock, soap, rest = FakeClock(), FakeGateway("soap-legacy"), FakeGateway("rest-sim")
    outcome = asyncio.run(adapter(soap, rest, clock).capture("ORD-1", USD))
    assert (outcome.status, outcome.gateway, outcome.soap_attempts, outcome.fallback) == (
        "APPROVED",
        "soap-legacy",
        1,
        None,
    )
    assert rest.calls == 0 and clock.sleeps == []


def test_transient_failures_are_retried_with_backoff_then_soap_answers() -> None:
    clock, soap, rest = FakeClock(), FakeGateway("soap-legacy", ["timeout", "fail", "ok"]), FakeGateway("rest-sim")
    a = adapter(soap, rest, clock)
    result = asyncio.run(a.capture("ORD-2", USD))
    assert (result.status, result.gateway, result.soap_attempts) == ("APPROVED", "soap-legacy", 3)
    assert clock.sleeps == [0.1, 0.2] and rest.calls == 0
    assert a.breaker.current_state == pybreaker.STATE_CLOSED and a.breaker.fail_counter == 0  # a success resets


def test_a_decline_is_an_answer_not_a_failure() -> None:
    clock, soap, rest = FakeClock(), FakeGateway("soap-legacy", "declined"), FakeGateway("rest-sim")
    a = adapter(soap, rest, clock)
    result = asyncio.run(a.capture("ORD-3", USD))
    assert (result.status, result.gateway, result.reason, result.fallback) == (
        "DECLINED",
        "soap-legacy",
        "card declined",
        None,
    )
    assert soap.calls == 1 and rest.calls == 0 and a.breaker.fail_counter == 0


def test_a_refused_request_is_a_422_without_retry_fallback_or_breaker_failure() -> None:
    clock, soap, rest = FakeClock(), FakeGateway("soap-legacy", "refused"), FakeGateway("rest-sim")
    a = adapter(soap, rest, clock)
    with pytest.raises(PaymentRefused) as raised:
        asyncio.run(a.capture("ORD-4", USD))
    assert problem_for(raised.value).status == 422
    assert soap.calls == 1 and rest.calls == 0 and a.breaker.fail_counter == 0


def test_soap_exhausted_falls_back_to_rest_and_opens_the_breaker() -> None:
    clock, soap, rest = FakeClock(), FakeGateway("soap-legacy", "fail"), FakeGateway("rest-sim")
    a = adapter(soap, rest, clock)
    opened = metric("payment_circuit_transitions_total", **{"from": "closed", "to": "open"})
    result = asyncio.run(a.capture("ORD-5", USD))
    assert (result.status, result.gateway, result.soap_attempts, result.fallback) == (
        "APPROVED",
        "rest-sim",
        5,
        "soap-exhausted",
    )
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8]  # 4 waits between 5 attempts (upper bound of the jitter)
    assert a.breaker.current_state == pybreaker.STATE_OPEN
    assert metric("payment_circuit_state") == 2
    assert metric("payment_circuit_transitions_total", **{"from": "closed", "to": "open"}) == opened + 1
    # open: the next payment goes straight to REST, SOAP is not called, nobody waits
    clock.sleeps.clear()
    result = asyncio.run(a.capture("ORD-6", USD))
    assert (result.gateway, result.soap_attempts, result.fallback) == ("rest-sim", 0, "circuit-open")
    assert soap.calls == 5 and clock.sleeps == []


def test_breaker_half_opens_after_the_reset_timeout_and_closes_after_successes() -> None:
    clock, soap, rest = FakeClock(), FakeGateway("soap-legacy", "fail"), FakeGateway("rest-sim")
    a = adapter(soap, rest, clock, reset_timeout=30.0, success_threshold=2)
    asyncio.run(a.capture("ORD-7", USD))
    assert a.breaker.current_state == pybreaker.STATE_OPEN
    clock.now += 29.0
    assert asyncio.run(a.capture("ORD-8", USD)).fallback == "circuit-open"  # still open at 29 s
    soap.script = "ok"  # the gateway recovers
    clock.now += 1.5
    first = asyncio.run(a.capture("ORD-9", USD))
    assert (first.gateway, first.soap_attempts) == ("soap-legacy", 1)
    assert a.breaker.current_state == pybreaker.STATE_HALF_OPEN  # one success of the two it needs
    assert metric("payment_circuit_state") == 1
    asyncio.run(a.capture("ORD-10", USD))
    assert a.breaker.current_state == pybreaker.STATE_CLOSED and metric("payment_circuit_state") == 0


def test_a_failed_trial_reopens_the_breaker_for_another_timeout() -> None:
    clock, soap, rest = FakeClock(), FakeGateway("soap-legacy", "fail"), FakeGateway("rest-sim")
    a = adapter(soap, rest, clock)
    asyncio.run(a.capture("ORD-11", USD))
    clock.now += 31
    trial = asyncio.run(a.capture("ORD-12", USD))
    # one SOAP attempt (the trial) failed, the breaker opened again: no more attempts, REST answered
    assert (trial.gateway, trial.soap_attempts, trial.fallback) == ("rest-sim", 1, "circuit-open")
    assert a.breaker.current_state == pybreaker.STATE_OPEN
    clock.now += 10
    assert asyncio.run(a.capture("ORD-13", USD)).soap_attempts == 0  # the new timeout counts from the trial


def test_scattered_failures_do_not_open_the_breaker() -> None:
    """The window is consecutive failures: a gateway that fails every other request stays closed."""
    clock, soap, rest = FakeClock(), FakeGateway("soap-legacy", ["fail", "ok"] * 20), FakeGateway("rest-sim")
    a = adapter(soap, rest, clock)
    for n in range(20):
        assert asyncio.run(a.capture(f"ORD-S{n}", USD)).gateway == "soap-legacy"
    assert a.breaker.current_state == pybreaker.STATE_CLOSED and rest.calls == 0


def test_both_paths_failing_is_a_failed_outcome_with_both_reasons() -> None:
    clock, soap, rest = FakeClock(), FakeGateway("soap-legacy", "timeout"), FakeGateway("rest-sim", "down")
    result = asyncio.run(adapter(soap, rest, clock).capture("ORD-14", USD))
    assert (result.status, result.payment_id, result.soap_attempts, result.fallback) == (
        "FAILED",
        None,
        5,
        "soap-exhausted",
    )
    assert result.reason is not None and "SOAP timeout" in result.reason and "connection refused" in result.reason


def test_the_open_interval_follows_the_injected_clock_not_the_wall_clock() -> None:
    clock = FakeClock()
    cb = circuit_breaker("t", fail_max=1, reset_timeout=30, success_threshold=1, clock=clock)

    def boom() -> None:
        raise GatewayFailure("fault", "x")

    with pytest.raises(GatewayFailure):
        cb.call(boom)
    assert cb.current_state == pybreaker.STATE_OPEN
    with pytest.raises(pybreaker.CircuitBreakerError):
        cb.call(lambda: None)
    clock.now += 30
    cb.call(lambda: None)
    assert cb.current_state == pybreaker.STATE_CLOSED
