"""The order state machine and money, with the laws they must keep."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopstream.domain import (
    IllegalTransition,
    Money,
    MoneyError,
    OrderLine,
    OrderStatus,
    can_transition,
    order_total,
    releases_stock,
    transition,
)

S = OrderStatus
LEGAL = {(S.PENDING, S.PAID), (S.PAID, S.FULFILLED), (S.PENDING, S.CANCELED)}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_exactly_the_seed_transitions_are_legal(current: OrderStatus, target: OrderStatus) -> None:
    if (current, target) in LEGAL:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition, match=f"{current.value} cannot become {target.value}"):
            transition(current, target)
    assert can_transition(current, target) == ((current, target) in LEGAL)


def test_only_canceling_a_pending_order_releases_stock() -> None:
    assert [(c, t) for c in S for t in S if releases_stock(c, t)] == [(S.PENDING, S.CANCELED)]


@given(st.lists(st.sampled_from(list(S)), max_size=8))
def test_terminal_states_stay_terminal(path: list[OrderStatus]) -> None:
    status = S.PENDING
    for target in path:
        if can_transition(status, target):
            status = transition(status, target)
    if status in (S.FULFILLED, S.CANCELED):
        assert not any(can_transition(status, t) for t in S)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("129.50", "USD", 12950),
        ("0.01", "EUR", 1),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        (7, "USD", 700),
    ],
)
def test_parse_major_units(amount: str, currency: str, minor: int) -> None:
    assert Money.parse(amount, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("1.005", "USD"),
        ("1.5", "JPY"),
        ("abc", "USD"),
        ("NaN", "USD"),
        ("1", "usd"),
        ("1", "US"),
    ],
)
def test_bad_money_is_refused(amount: str, currency: str) -> None:
    with pytest.raises(MoneyError):
        Money.parse(amount, currency)


def test_money_never_takes_a_float_or_mixes_currencies() -> None:
    with pytest.raises(MoneyError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="USD with EUR"):
        _ = Money(1, "USD") + Money(1, "EUR")


amounts = st.integers(min_value=-(10**12), max_value=10**12)


@given(amounts, amounts, amounts)
def test_addition_is_associative_and_commutative(a: int, b: int, c: int) -> None:
    x, y, z = Money(a, "USD"), Money(b, "USD"), Money(c, "USD")
    assert (x + y) + z == x + (y + z)
    assert x + y == y + x
    assert x - x == Money.zero("USD")


@given(amounts)
def test_decimal_round_trips(minor: int) -> None:
    money = Money(minor, "USD")
    assert Money.parse(money.decimal(), "USD") == money
    assert money.decimal() == Decimal(minor) / 100


def test_order_total_sums_lines_in_one_currency() -> None:
    lines = [OrderLine("P1", 2, Money(2500, "USD")), OrderLine("P2", 1, Money(7950, "USD"))]
    assert order_total(lines) == Money(12950, "USD")
    with pytest.raises(ValueError, match="at least one line"):
        order_total([])
    with pytest.raises(ValueError, match="must be positive"):
        OrderLine("P1", 0, Money(1, "USD"))
    with pytest.raises(MoneyError):
        order_total([OrderLine("P1", 1, Money(1, "USD")), OrderLine("P2", 1, Money(1, "EUR"))])


def test_money_beyond_any_real_amount_is_refused() -> None:
    with pytest.raises(MoneyError, match="beyond the largest amount"):
        Money(10**15, "USD")
    lines = [OrderLine(f"P{i}", 1000, Money(10**14 - 1, "USD")) for i in range(100)]
    with pytest.raises(MoneyError):
        order_total(lines)
