"""The shared domain of shopstream: the contracts and rules that the API, the gRPC servicer, the
dataflows and the replay all use, and the errors its use cases raise. Imports only the standard
library (it is installed into the PyFlink environment too)."""

from shopstream.domain.envelope import envelope
from shopstream.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    IllegalTransition,
    InsufficientStock,
    Invalid,
    Malformed,
    NotFound,
    PaymentDeclined,
    PaymentRefused,
    Unauthenticated,
    Unavailable,
)
from shopstream.domain.events import EVENT_TYPES, EventType, event_type
from shopstream.domain.money import Money, MoneyError
from shopstream.domain.orders import (
    OrderLine,
    OrderStatus,
    can_transition,
    order_total,
    releases_stock,
    transition,
)
from shopstream.domain.prices import PriceVersion, change_price, price_at

__all__ = [
    "EVENT_TYPES",
    "Conflict",
    "DomainError",
    "EventType",
    "Forbidden",
    "IllegalTransition",
    "InsufficientStock",
    "Invalid",
    "Malformed",
    "Money",
    "MoneyError",
    "NotFound",
    "OrderLine",
    "OrderStatus",
    "PaymentDeclined",
    "PaymentRefused",
    "PriceVersion",
    "Unauthenticated",
    "Unavailable",
    "can_transition",
    "change_price",
    "envelope",
    "event_type",
    "order_total",
    "price_at",
    "releases_stock",
    "transition",
]
