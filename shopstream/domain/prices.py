"""Prices as a slowly changing dimension (type 2): every change closes the open version and opens
the next; at any instant exactly one version is valid."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from shopstream.domain.money import Money, MoneyError


@dataclass(frozen=True)
class PriceVersion:
    version: int
    price: Money
    valid_from: datetime
    valid_to: datetime | None = None  # None: the current version

    @property
    def is_current(self) -> bool:
        return self.valid_to is None


def change_price(current: PriceVersion, new_price: Money, at: datetime) -> tuple[PriceVersion, PriceVersion] | None:
    """(the closed current version, the new open one); None when the price does not change.
    A currency change is refused: it is a different product, not a new version."""
    if not current.is_current:
        raise ValueError(f"version {current.version} is already closed")
    if new_price.currency != current.price.currency:
        raise MoneyError(f"the price is in {current.price.currency}; a currency change is a new product")
    if new_price == current.price:
        return None
    if at <= current.valid_from:
        raise ValueError("a new price version must start after the current one")
    return replace(current, valid_to=at), PriceVersion(current.version + 1, new_price, at)


def price_at(history: list[PriceVersion], at: datetime) -> PriceVersion | None:
    """The version valid at an instant (valid_from inclusive, valid_to exclusive)."""
    for v in history:
        if v.valid_from <= at and (v.valid_to is None or at < v.valid_to):
            return v
    return None
