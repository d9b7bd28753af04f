"""RS256 tokens checked against a JWKS served over HTTP (a real local server, as an identity
provider would serve it)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from serving_api.auth.tokens import Authenticator
from serving_api.http.problems import problem_for
from serving_api.settings import ApiSettings
from shopstream.domain import Unauthenticated

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def token(key: rsa.RSAPrivateKey, **claims: object) -> str:
    now = int(time.time())
    base = {"sub": "USER-rs", "roles": ["CUSTOMER"], "iss": "shopstream", "exp": now + 60, "iat": now}
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


def test_rs256_tokens_are_verified_against_the_jwks(jwks_url: str) -> None:
    auth = Authenticator(ApiSettings(jwt_algorithm="RS256", jwt_jwks_url=jwks_url))
    who = auth.principal(f"Bearer {token(KEY)}")
    assert who.user_id == "USER-rs" and who.roles == frozenset({"CUSTOMER"})
    for bad in (token(OTHER), token(KEY, exp=int(time.time()) - 10), token(KEY, iss="someone-else")):
        with pytest.raises(Unauthenticated) as refused:
            auth.principal(f"Bearer {bad}")
        assert problem_for(refused.value).status == 401


def test_settings_refuse_rs256_without_jwks_and_the_dev_secret_outside_dev() -> None:
    with pytest.raises(ValueError, match="JWKS"):
        ApiSettings(jwt_algorithm="RS256")
    with pytest.raises(ValueError, match="JWT_SECRET"):
        ApiSettings(environment="production")
    assert (
        ApiSettings(environment="production", jwt_secret="a-real-secret-of-enough-length").environment == "production"
    )
