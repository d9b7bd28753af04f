"""Who is calling: a JWT (HS256 with a shared secret in dev, RS256 against a JWKS in production)
carrying `sub` (the user id) and `roles`: CUSTOMER and ADMIN for people, and the narrow roles of
internal callers (STOCK_KEEPER: the IoT ingest; MERCHANDISER, WAREHOUSE: catalog upkeep and
fulfilment). What each role may do is the Rego policy's (`serving_api/policies/`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from serving_api.settings import ApiSettings
from shopstream.domain import Unauthenticated

ROLES = {"CUSTOMER", "ADMIN", "STOCK_KEEPER", "MERCHANDISER", "WAREHOUSE"}


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "ADMIN" in self.roles


class Authenticator:
    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None

    def principal(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthenticated("send `Authorization: Bearer <JWT>`")
        token = authorization[7:].strip()
        try:
            key = (
                self._jwks.get_signing_key_from_jwt(token).key
                if self._jwks
                else self.settings.jwt_secret.get_secret_value()
            )
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.settings.jwt_algorithm],
                issuer=self.settings.jwt_issuer,
                options={"require": ["sub", "exp", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("the token's roles claim must be a list of strings")
        return Principal(str(claims["sub"]), frozenset(r for r in roles if r in ROLES))


def issue_token(settings: ApiSettings, user_id: str, roles: list[str], ttl_seconds: int = 3600) -> str:
    """A dev token (HS256 with the configured secret): for the local stack's identity provider
    (`dev.stack.identity`), tests and curl."""
    if settings.jwt_algorithm != "HS256":
        raise ValueError("dev tokens are HS256; with RS256 tokens come from your identity provider")
    now = int(time.time())
    claims = {"sub": user_id, "roles": roles, "iss": settings.jwt_issuer, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
