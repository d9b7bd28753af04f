"""RFC 7807 problem details: every error of the API is `application/problem+json`. Domain errors
become problems here (`problem_for`, the one table of their HTTP statuses); a router raises a
`Problem` itself only for what HTTP alone checks (a header, a query parameter)."""

from __future__ import annotations

from typing import Any

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
    nearest,
)

PROBLEM_TYPE = "https://shopstream.dev/problems/"


class Problem(Exception):
    """An error meant for the client: status, a stable type slug, a title and a detail."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra

    def body(self, instance: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"type": PROBLEM_TYPE + self.slug, "title": self.title, "status": self.status}
        if self.detail:
            out["detail"] = self.detail
        if instance:
            out["instance"] = instance
        out.update(self.extra)
        return out


def invalid(detail: str, params: list[dict[str, str]] | None = None) -> Problem:
    return Problem(
        422, "validation", "The request is not valid", detail, **({"invalid_params": params} if params else {})
    )


# the status of each domain error; a subclass without a row takes its nearest base's
STATUS: dict[type[DomainError], int] = {
    Malformed: 400,
    Unauthenticated: 401,
    PaymentDeclined: 402,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    IllegalTransition: 409,
    InsufficientStock: 409,
    Invalid: 422,
    PaymentRefused: 422,
    Unavailable: 503,
}


def status_for(error: type[DomainError]) -> int | None:
    """The HTTP status of a domain error class; None when neither it nor a base is mapped."""
    return nearest(STATUS, error)


def internal() -> Problem:
    """What the client sees of a bug: no detail, nothing of the exception's text."""
    return Problem(500, "internal", "Internal error")


def problem_for(error: DomainError) -> Problem:
    """The problem a domain error is answered with: its code as the type, its title and detail,
    `invalid_params` when there are any, and its facts as extension members."""
    status = status_for(type(error))
    if status is None:
        return internal()
    extra: dict[str, Any] = dict(error.facts)
    if error.invalid_params:
        extra["invalid_params"] = error.invalid_params
    return Problem(status, error.code, error.title, error.detail, **extra)
