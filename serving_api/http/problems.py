"""RFC 7807 problem details: every error of the API is `application/problem+json`."""

from __future__ import annotations

from typing import Any

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


def not_found(what: str, ident: str) -> Problem:
    return Problem(404, "not-found", f"{what} not found", f"no {what.lower()} {ident}")


def conflict(slug: str, title: str, detail: str, **extra: Any) -> Problem:
    return Problem(409, slug, title, detail, **extra)


def invalid(detail: str, params: list[dict[str, str]] | None = None) -> Problem:
    return Problem(
        422, "validation", "The request is not valid", detail, **({"invalid_params": params} if params else {})
    )
