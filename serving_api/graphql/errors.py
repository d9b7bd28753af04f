"""Domain errors as GraphQL errors, in one place: a resolver lets a use case's error through, and
`DomainErrorCodes` answers it with the error's detail and `extensions.code` from `CODES`. Anything
else that is not a GraphQL error (a bug, an outage, an unmapped domain error) is masked as
"Unexpected error." by strawberry's MaskErrors (`unexpected` decides)."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

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

# the `extensions.code` of each domain error; a subclass without a row takes its nearest base's
CODES: dict[type[DomainError], str] = {
    NotFound: "NOT_FOUND",
    Invalid: "BAD_USER_INPUT",
    Malformed: "BAD_USER_INPUT",
    PaymentRefused: "BAD_USER_INPUT",
    Conflict: "CONFLICT",
    IllegalTransition: "ILLEGAL_TRANSITION",
    InsufficientStock: "INSUFFICIENT_STOCK",
    PaymentDeclined: "PAYMENT_DECLINED",
    Unavailable: "UNAVAILABLE",
    Unauthenticated: "UNAUTHENTICATED",
    Forbidden: "FORBIDDEN",
}


def code_for(error: type[DomainError]) -> str | None:
    """The GraphQL error code of a domain error class; None when neither it nor a base is mapped."""
    return nearest(CODES, error)


def _mapped(cause: BaseException | None) -> DomainError | None:
    return cause if isinstance(cause, DomainError) and code_for(type(cause)) is not None else None


def coded(error: GraphQLError) -> GraphQLError:
    """`error` again, or, when a mapped domain error caused it, that error's detail and code."""
    cause = _mapped(error.original_error)
    if cause is None:
        return error
    return GraphQLError(
        cause.detail or cause.title,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": code_for(type(cause))},
    )


def unexpected(error: GraphQLError) -> bool:
    """MaskErrors' question: an exception that is neither a GraphQL error nor a mapped domain error."""
    cause = error.original_error
    return cause is not None and not isinstance(cause, GraphQLError) and _mapped(cause) is None


class DomainErrorCodes(SchemaExtension):
    """After each operation: every error a mapped domain error caused carries its code."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | ExecutionResult) and result.errors:
            result.errors = [coded(e) for e in result.errors]
