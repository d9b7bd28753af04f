"""Domain errors and the edges: every error the use cases raise has a REST status, a gRPC code and
a GraphQL code, each from one table; an error no table knows is an internal error that shows
nothing of its text."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest
import strawberry

from serving_api.graphql import errors as gql_errors
from serving_api.graphql.schema import schema as api_schema
from serving_api.grpc import errors as grpc_errors
from serving_api.http import problems
from serving_api.http.app import create_app
from serving_api.settings import ApiSettings
from shopstream.domain import (
    DomainError,
    IllegalTransition,
    InsufficientStock,
    Invalid,
    Malformed,
    NotFound,
    OrderStatus,
    PaymentDeclined,
    Unavailable,
    errors,
    transition,
)

ERRORS = [getattr(errors, name) for name in errors.__all__ if name != "DomainError"]
SECRET = "db password is hunter2"


class Unmapped(DomainError):
    """A domain error added without a row in the tables."""


def test_the_domain_exports_every_error_it_defines() -> None:
    import shopstream.domain as domain

    defined = {c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, DomainError)}
    assert defined == {getattr(errors, name) for name in errors.__all__}
    assert set(errors.__all__) <= set(domain.__all__)


@pytest.mark.parametrize(
    "table", [problems.STATUS, grpc_errors.CODES, gql_errors.CODES], ids=["rest", "grpc", "graphql"]
)
def test_every_domain_error_has_its_own_row_in_every_table(table: dict[type[DomainError], Any]) -> None:
    assert set(table) == set(ERRORS), "a row for each exported error, none for the base"


@pytest.mark.parametrize(
    ("error", "status", "code", "gql"),
    [
        (NotFound, 404, grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        (Invalid, 422, grpc.StatusCode.INVALID_ARGUMENT, "BAD_USER_INPUT"),
        (Malformed, 400, grpc.StatusCode.INVALID_ARGUMENT, "BAD_USER_INPUT"),
        (InsufficientStock, 409, grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_STOCK"),
        (IllegalTransition, 409, grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION"),
        (PaymentDeclined, 402, grpc.StatusCode.FAILED_PRECONDITION, "PAYMENT_DECLINED"),
        (errors.PaymentRefused, 422, grpc.StatusCode.INVALID_ARGUMENT, "BAD_USER_INPUT"),
        (Unavailable, 503, grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
        (errors.Unauthenticated, 401, grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (errors.Forbidden, 403, grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN"),
    ],
)
def test_the_codes_clients_rely_on(error: type[DomainError], status: int, code: grpc.StatusCode, gql: str) -> None:
    assert problems.status_for(error) == status
    assert grpc_errors.code_for(error) == code
    assert gql_errors.code_for(error) == gql


def test_a_subclass_without_a_row_takes_its_bases_and_an_unmapped_error_has_none() -> None:
    class ReservationGone(errors.Conflict):
        pass

    assert problems.status_for(ReservationGone) == 409
    assert grpc_errors.code_for(ReservationGone) == grpc.StatusCode.FAILED_PRECONDITION
    assert problems.status_for(Unmapped) is None and grpc_errors.code_for(Unmapped) is None
    assert gql_errors.code_for(Unmapped) is None


def test_a_problem_carries_the_errors_code_title_detail_params_and_facts() -> None:
    missing = problems.problem_for(NotFound("Order", "ORD-1")).body("/api/v1/orders/ORD-1")
    assert missing == {
        "type": "https://shopstream.dev/problems/not-found",
        "title": "Order not found",
        "status": 404,
        "detail": "no order ORD-1",
        "instance": "/api/v1/orders/ORD-1",
    }
    bad = problems.problem_for(Invalid("2 invalid field(s)", invalid_params=[{"name": "url", "reason": "x"}]))
    assert (bad.status, bad.slug, bad.extra) == (
        422,
        "validation",
        {"invalid_params": [{"name": "url", "reason": "x"}]},
    )
    assert "invalid_params" not in problems.problem_for(Invalid("the cart is empty")).body()
    with pytest.raises(IllegalTransition) as illegal:
        transition(OrderStatus.CANCELED, OrderStatus.PAID)
    assert problems.problem_for(illegal.value).body() == {
        "type": "https://shopstream.dev/problems/illegal-transition",
        "title": "Illegal order transition",
        "status": 409,
        "detail": "an order that is CANCELED cannot become PAID",
        "orderStatus": "CANCELED",
    }
    busy = Unavailable("", code="inventory-unavailable", title="Inventory service unavailable")
    assert problems.problem_for(busy).body() == {
        "type": "https://shopstream.dev/problems/inventory-unavailable",
        "title": "Inventory service unavailable",
        "status": 503,
    }


def test_an_unmapped_error_is_an_internal_problem_without_its_text() -> None:
    problem = problems.problem_for(Unmapped(SECRET, code="leaky", title=SECRET, invalid_params=[], hint=SECRET))
    assert problem.body("/x") == {
        "type": "https://shopstream.dev/problems/internal",
        "title": "Internal error",
        "status": 500,
        "instance": "/x",
    }
    assert grpc_errors.status_of(Unmapped(SECRET)) == (grpc.StatusCode.INTERNAL, "internal error")
    assert grpc_errors.status_of(InsufficientStock("insufficient stock (P-1: wanted 2, available 1)")) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient stock (P-1: wanted 2, available 1)",
    )


def get(path: str) -> httpx.Response:
    """GET from the API app with its handlers (no lifespan: nothing is connected), plus a route
    that raises a domain error."""
    app = create_app(ApiSettings())
    raised: dict[str, DomainError] = {
        "declined": PaymentDeclined(
            "card declined", paymentId="PAY-1", gateway="soap-legacy", fallback=None, orderStatus="PENDING"
        ),
        "unmapped": Unmapped(SECRET, hint=SECRET),
    }

    @app.get("/raise/{what}")
    async def raise_it(what: str) -> None:
        raise raised[what]

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            return await client.get(path)

    return asyncio.run(call())


def test_the_app_answers_a_domain_error_as_problem_json() -> None:
    r = get("/raise/declined")
    assert r.status_code == 402 and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "https://shopstream.dev/problems/payment-declined",
        "title": "Payment declined",
        "status": 402,
        "detail": "card declined",
        "instance": "/raise/declined",
        "paymentId": "PAY-1",
        "gateway": "soap-legacy",
        "fallback": None,
        "orderStatus": "PENDING",
    }


def test_the_app_answers_an_unmapped_domain_error_as_a_500_without_its_text() -> None:
    r = get("/raise/unmapped")
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "https://shopstream.dev/problems/internal",
        "title": "Internal error",
        "status": 500,
        "instance": "/raise/unmapped",
    }
    assert SECRET not in r.text


@strawberry.type
class Query:
    @strawberry.field
    def missing(self) -> str:
        raise NotFound("Product", "P-1")

    @strawberry.field
    def down(self) -> str:
        raise Unavailable("the price map cannot be read; retry", code="flash-prices-unavailable")

    @strawberry.field
    def unmapped(self) -> str:
        raise Unmapped(SECRET)

    @strawberry.field
    def bug(self) -> str:
        raise RuntimeError(SECRET)


@pytest.mark.parametrize(
    ("field", "message", "code"),
    [
        ("missing", "no product P-1", "NOT_FOUND"),
        ("down", "the price map cannot be read; retry", "UNAVAILABLE"),
        ("unmapped", "Unexpected error.", None),
        ("bug", "Unexpected error.", None),
    ],
)
def test_graphql_errors_carry_the_domain_errors_code_and_mask_the_rest(
    field: str, message: str, code: str | None
) -> None:
    # the API schema's own extensions, around resolvers that raise
    schema = strawberry.Schema(query=Query, extensions=api_schema.extensions)
    result = schema.execute_sync("{ " + field + " }")
    assert result.errors is not None and len(result.errors) == 1
    error = result.errors[0]
    assert error.message == message and SECRET not in error.message
    assert (error.extensions or {}).get("code") == code
    assert error.path == [field]
