"""SCD2 price versions: one open version, closed versions never overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopstream.domain import Money, MoneyError, PriceVersion, change_price, price_at

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_change_closes_the_current_version_and_opens_the_next() -> None:
    v1 = PriceVersion(1, Money(2500, "USD"), T0)
    closed, opened = change_price(v1, Money(2750, "USD"), T0 + timedelta(days=1)) or (None, None)
    assert closed == PriceVersion(1, Money(2500, "USD"), T0, T0 + timedelta(days=1))
    assert opened == PriceVersion(2, Money(2750, "USD"), T0 + timedelta(days=1))


def test_the_same_price_is_no_new_version_and_other_currencies_are_refused() -> None:
    v1 = PriceVersion(1, Money(2500, "USD"), T0)
    assert change_price(v1, Money(2500, "USD"), T0 + timedelta(hours=1)) is None
    with pytest.raises(MoneyError, match="new product"):
        change_price(v1, Money(2500, "EUR"), T0 + timedelta(hours=1))
    with pytest.raises(ValueError, match="already closed"):
        change_price(PriceVersion(1, Money(1, "USD"), T0, T0 + timedelta(1)), Money(2, "USD"), T0 + timedelta(2))
    with pytest.raises(ValueError, match="start after"):
        change_price(v1, Money(2600, "USD"), T0)


@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=10**6), st.integers(min_value=1, max_value=10**6)),
        min_size=1,
        max_size=15,
    )
)
def test_any_sequence_of_changes_leaves_one_valid_version_at_every_instant(changes: list[tuple[int, int]]) -> None:
    history = [PriceVersion(1, Money(100, "USD"), T0)]
    at = T0
    for minutes, amount in changes:
        at = at + timedelta(minutes=minutes)
        result = change_price(history[-1], Money(amount, "USD"), at)
        if result:
            history[-1:] = list(result)
    assert [v.version for v in history] == list(range(1, len(history) + 1))
    assert sum(v.is_current for v in history) == 1
    for earlier, later in zip(history, history[1:], strict=False):
        assert earlier.valid_to == later.valid_from  # no gap, no overlap
    for v in history:
        assert price_at(history, v.valid_from) == v
    assert price_at(history, T0 - timedelta(seconds=1)) is None
