"""Domain errors: why a use case refused, in the domain's words. Each edge (REST, gRPC, GraphQL)
maps them to its protocol in one place; a use case never knows a status code.

An error carries a stable `code` (machine-readable; the REST problem type's slug), a short
`title` (the kind of refusal), a human `detail` (this occurrence), the `invalid_params` where the
caller's input was at fault (`[{"name": "items", "reason": "unknown product P-1"}]`), and `facts` a
client may act on, named as the APIs spell them (`{"orderStatus": "PENDING"}`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TypeVar

V = TypeVar("V")


class DomainError(Exception):
    """The base: an edge answers an error it has no mapping for as an internal error."""

    code = "error"
    title = "Error"

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        title: str | None = None,
        invalid_params: Sequence[dict[str, str]] = (),
        **facts: object,
    ) -> None:
        super().__init__(detail or title or type(self).title)
        self.detail = detail
        self.code = code or type(self).code
        self.title = title or type(self).title
        self.invalid_params = list(invalid_params)
        self.facts = facts


class NotFound(DomainError):
    """No `what` (Order, Cart, Product...) with this id."""

    code = "not-found"

    def __init__(self, what: str, ident: str, detail: str | None = None) -> None:
        super().__init__(detail or f"no {what.lower()} {ident}", title=f"{what} not found")
        self.what = what
        self.ident = ident


class Invalid(DomainError):
    """The caller's input breaks a rule (well-formed, but not acceptable)."""

    code = "validation"
    title = "The request is not valid"


class Malformed(Invalid):
    """The request lacks something it must carry, or carries it unusable (an Idempotency-Key)."""

    code = "bad-request"
    title = "The request is malformed"


class Conflict(DomainError):
    """The request is valid but the current state refuses it (a cart already checked out, a
    duplicate SKU, a request with the same key still running)."""

    code = "conflict"
    title = "Conflict with the current state"


class IllegalTransition(Conflict):
    """The order state machine does not allow this move."""

    code = "illegal-transition"
    title = "Illegal order transition"

    def __init__(self, current: Enum, target: Enum) -> None:
        super().__init__(f"an order that is {current.value} cannot become {target.value}", orderStatus=current.value)
        self.current = current
        self.target = target


class InsufficientStock(Conflict):
    """Not enough available units to reserve."""

    code = "insufficient-stock"
    title = "Insufficient stock"


class PaymentDeclined(DomainError):
    """The payment gateway answered, and said no (the card, the amount)."""

    code = "payment-declined"
    title = "Payment declined"


class PaymentRefused(Invalid):
    """The gateway refused the request itself (e.g. an unsupported currency): the same request would
    be refused again, anywhere; neither retried nor a failure of the gateway."""

    code = "payment-refused"
    title = "Payment refused"


class Unavailable(DomainError):
    """A dependency is down or unreadable (the inventory service, the payment gateways, the
    flash-sale price map, the policy engine): retry later."""

    code = "unavailable"
    title = "A dependency is unavailable"


class Unauthenticated(DomainError):
    """No caller could be identified (no or a bad token)."""

    code = "unauthorized"
    title = "Authentication required"


class Forbidden(DomainError):
    """The caller is known, and the policy does not allow this."""

    code = "forbidden"
    title = "Not allowed"


__all__ = [
    "Conflict",
    "DomainError",
    "Forbidden",
    "IllegalTransition",
    "InsufficientStock",
    "Invalid",
    "Malformed",
    "NotFound",
    "PaymentDeclined",
    "PaymentRefused",
    "Unauthenticated",
    "Unavailable",
]


def nearest(table: Mapping[type[DomainError], V], error: type[DomainError]) -> V | None:
    """An edge's row for an error class: its own, else its nearest mapped base's; None if neither."""
    return next((table[cls] for cls in error.__mro__ if cls in table), None)
