"""The order lifecycle: PENDING -> PAID -> FULFILLED, PENDING -> CANCELED (with compensation:
the stock reservation is released). Anything else is an illegal transition."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shopstream.domain.errors import IllegalTransition
from shopstream.domain.money import Money


class OrderStatus(enum.Enum):
    PENDING = "PENDING"
    PAID = "PAID"
    FULFILLED = "FULFILLED"
    CANCELED = "CANCELED"


# how far along its lifecycle a status is: a projection of the status keeps the highest rank it
# saw, so a redelivered or late event never moves an order back (the rank is its version)
STATUS_RANK: dict[OrderStatus, int] = {
    OrderStatus.PENDING: 1,
    OrderStatus.PAID: 2,
    OrderStatus.FULFILLED: 3,
    OrderStatus.CANCELED: 3,
}


def is_final(status: OrderStatus) -> bool:
    """No transition leaves it."""
    return not _ALLOWED[status]


_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.CANCELED}),
    OrderStatus.PAID: frozenset({OrderStatus.FULFILLED}),
    OrderStatus.FULFILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
}


def transition(current: OrderStatus, target: OrderStatus) -> OrderStatus:
    """The new status, or IllegalTransition."""
    if target not in _ALLOWED[current]:
        raise IllegalTransition(current, target)
    return target


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    return target in _ALLOWED[current]


def releases_stock(current: OrderStatus, target: OrderStatus) -> bool:
    """Canceling a PENDING order gives its reserved stock back (the compensation)."""
    return current is OrderStatus.PENDING and target is OrderStatus.CANCELED


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    qty: int
    unit_price: Money

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError(f"quantity of {self.product_id} must be positive, got {self.qty}")

    @property
    def total(self) -> Money:
        return self.unit_price.times(self.qty)


def order_total(lines: list[OrderLine]) -> Money:
    """Sum of the lines, all in one currency; an empty order is an error."""
    if not lines:
        raise ValueError("an order needs at least one line")
    total = Money.zero(lines[0].unit_price.currency)
    for line in lines:
        total = total + line.total
    return total
