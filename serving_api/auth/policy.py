"""Authorization is one question to OPA per request, asked here and nowhere else."""

from __future__ import annotations

from typing import Any

import httpx

from serving_api.auth.tokens import Principal
from shopstream.domain import Forbidden, Unavailable


class Authorizer:
    def __init__(self, opa_url: str) -> None:
        self._http = httpx.AsyncClient(base_url=opa_url, timeout=2.0)

    async def close(self) -> None:
        await self._http.aclose()

    async def require(self, principal: Principal, action: str, resource: dict[str, Any] | None = None) -> None:
        """Raise Forbidden with OPA's reasons unless the policy allows `action`."""
        body = {
            "input": {
                "action": action,
                "user": {"id": principal.user_id, "roles": sorted(principal.roles)},
                "resource": resource or {},
            }
        }
        try:
            response = await self._http.post("/v1/data/shopstream/authz/decision", json=body)
            response.raise_for_status()
            decision = response.json().get("result") or {}
        except (httpx.HTTPError, ValueError) as exc:
            # fail closed: no decision, no access
            raise Unavailable(
                str(exc), code="authorization-unavailable", title="Authorization service unavailable"
            ) from exc
        if decision.get("allow") is not True:
            raise Forbidden("; ".join(decision.get("reasons") or ["denied by policy"]), action=action)
