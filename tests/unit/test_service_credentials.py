"""Internal callers' credentials: the local stack's identity provider writes the ingest a token of
its own narrow role into a file, keeps a good one, renews a stale one; the ingest re-reads the
file when it changes and refuses to start without a credential."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jwt
import pytest

from dev.stack.identity import INGEST_ROLES, INGEST_SUBJECT, RENEW_BEFORE, LocalIdentity
from ingest.writer import TokenSource
from serving_api.auth.tokens import Authenticator
from serving_api.settings import ApiSettings


def claims(path: Path) -> dict[str, object]:
    return jwt.decode(path.read_text(), options={"verify_signature": False})


def test_the_ingests_token_file_is_private_verifies_and_carries_only_its_narrow_role(tmp_path: Path) -> None:
    api = ApiSettings()
    path = tmp_path / "secrets" / "iot-ingest.jwt"
    assert LocalIdentity(api).ensure_token_file(path, INGEST_SUBJECT, INGEST_ROLES)
    assert path.stat().st_mode & 0o777 == 0o600
    who = Authenticator(api).principal(f"Bearer {path.read_text()}")
    assert who.user_id == INGEST_SUBJECT and who.roles == frozenset({"STOCK_KEEPER"}) and not who.is_admin


def test_a_good_token_is_kept_and_a_stale_foreign_or_unverifiable_one_is_replaced(tmp_path: Path) -> None:
    api, path = ApiSettings(), tmp_path / "t.jwt"
    identity = LocalIdentity(api)
    assert identity.ensure_token_file(path, INGEST_SUBJECT, INGEST_ROLES)
    first = path.read_text()
    assert not identity.ensure_token_file(path, INGEST_SUBJECT, INGEST_ROLES), "kept: no restart, no churn"
    assert path.read_text() == first
    assert identity.ensure_token_file(path, INGEST_SUBJECT, ["ADMIN"]), "other roles: replaced"
    # one that expires within the renewal margin
    path.write_text(identity.token(INGEST_SUBJECT, INGEST_ROLES, RENEW_BEFORE - 60))
    assert identity.ensure_token_file(path, INGEST_SUBJECT, INGEST_ROLES)
    assert int(claims(path)["exp"]) - time.time() > RENEW_BEFORE  # type: ignore[call-overload]
    # signed with another secret (the API's secret changed)
    other = ApiSettings(jwt_secret="another-secret-of-at-least-32-bytes-0123456789")  # type: ignore[arg-type]
    path.write_text(LocalIdentity(other).token(INGEST_SUBJECT, INGEST_ROLES, 40 * 86_400))
    assert identity.ensure_token_file(path, INGEST_SUBJECT, INGEST_ROLES)
    Authenticator(api).principal(f"Bearer {path.read_text()}")
    path.write_text("not a token")
    assert identity.ensure_token_file(path, INGEST_SUBJECT, INGEST_ROLES)


def test_the_ingest_rereads_its_token_file_when_it_changes_or_was_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jwt"
    path.write_text("first\n")
    tokens = TokenSource("", path)
    assert tokens.header() == {"Authorization": "Bearer first"}
    path.write_text("second")
    os.utime(path, (time.time() + 5, time.time() + 5))  # a rotation, seen by its mtime
    assert tokens.header() == {"Authorization": "Bearer second"}
    path.write_text("third")
    stamp = path.stat().st_mtime
    os.utime(path, (stamp, stamp))
    tokens.expire()  # the API said 401: read it again whatever its mtime
    assert tokens.header() == {"Authorization": "Bearer third"}
    assert TokenSource("fixed").header() == {"Authorization": "Bearer fixed"}


def test_the_ingest_needs_a_credential_to_start() -> None:
    with pytest.raises(ValueError, match="SHOPSTREAM_IOT_INGEST__API_TOKEN"):
        TokenSource("", None)
