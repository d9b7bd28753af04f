"""The local stack's identity provider. The internal callers it runs get credentials of their own,
of a narrow role, instead of minting tokens with the API's secret themselves:

- the IoT ingest: a token of role STOCK_KEEPER (stock adjustments only) in a file,
  `.local/secrets/iot-ingest.jwt`, valid 180 days, that the ingest re-reads when it changes; the
  stack re-issues it on `up` when it is missing, expires within 30 days, or no longer verifies (a
  new secret) — so a stack left running needs an `up` at least every five months;
- the storefront simulator: a back office of roles MERCHANDISER and WAREHOUSE (it seeds products
  and ships paid orders) and CUSTOMER tokens, one per simulated customer.

Tokens are HS256, signed with the secret the API verifies (`SHOPSTREAM_API__JWT_SECRET`, the dev
secret by default). Outside the local stack an identity provider of yours issues them: give the
ingest `SHOPSTREAM_IOT_INGEST__API_TOKEN` or `__API_TOKEN_FILE`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jwt

from serving_api.auth.tokens import issue_token
from serving_api.settings import ApiSettings

SERVICE_TOKEN_TTL = 180 * 86_400
RENEW_BEFORE = 30 * 86_400
INGEST_SUBJECT, INGEST_ROLES = "SERVICE-iot-ingest", ["STOCK_KEEPER"]
BACK_OFFICE_SUBJECT, BACK_OFFICE_ROLES = "SERVICE-storefront-simulator", ["MERCHANDISER", "WAREHOUSE"]


class LocalIdentity:
    """Issues the local stack's tokens with the API's own verification settings."""

    def __init__(self, api: ApiSettings | None = None) -> None:
        self.api = api or ApiSettings()

    def token(self, subject: str, roles: list[str], ttl_seconds: int = 86_400) -> str:
        return issue_token(self.api, subject, roles, ttl_seconds)

    def customer(self, user_id: str) -> str:
        return self.token(user_id, ["CUSTOMER"])

    def back_office(self) -> str:
        return self.token(BACK_OFFICE_SUBJECT, BACK_OFFICE_ROLES)

    def ensure_token_file(self, path: Path, subject: str, roles: list[str]) -> bool:
        """Writes a fresh token to `path` (mode 600) unless the one there is still good for
        `RENEW_BEFORE`, for this subject and these roles; says whether it wrote one."""
        if self._still_good(path, subject, roles):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.token(subject, roles, SERVICE_TOKEN_TTL))
        temporary.replace(path)  # a reader sees the old token or the new one, never half of one
        return True

    def _still_good(self, path: Path, subject: str, roles: list[str]) -> bool:
        try:
            claims = jwt.decode(
                path.read_text().strip(),
                self.api.jwt_secret.get_secret_value(),
                algorithms=["HS256"],
                issuer=self.api.jwt_issuer,
                options={"require": ["sub", "exp", "iss"]},
            )
        except (OSError, jwt.PyJWTError):
            return False
        fresh = int(claims["exp"]) - time.time() > RENEW_BEFORE
        return fresh and claims["sub"] == subject and claims.get("roles") == roles
