"""The authorization policies: their own Rego tests (`opa test`) and the live OPA server."""

from __future__ import annotations

import subprocess

import httpx

from dev.stack.stack import Stack


def test_rego_policies_pass_their_own_tests(stack: Stack) -> None:
    opa = stack.paths.home / "bin" / "opa"
    policies = stack.settings.repo / "serving_api" / "policies"
    check = subprocess.run([str(opa), "check", "--strict", str(policies)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    result = subprocess.run([str(opa), "test", str(policies), "-v"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and "PASS: " in result.stdout


def test_the_running_opa_denies_an_invalid_cancellation(stack: Stack) -> None:
    url = f"{stack.settings.opa.url}/v1/data/shopstream/authz/decision"
    user = {"id": "USER-bob", "roles": ["CUSTOMER"]}
    denied = httpx.post(
        url,
        json={
            "input": {"action": "order.cancel", "user": user, "resource": {"owner": "USER-alice", "status": "PENDING"}}
        },
    ).json()
    assert denied["result"] == {"allow": False, "reasons": ["not your resource"]}
    allowed = httpx.post(
        url,
        json={
            "input": {"action": "order.cancel", "user": user, "resource": {"owner": "USER-bob", "status": "PENDING"}}
        },
    ).json()
    assert allowed["result"] == {"allow": True, "reasons": []}
