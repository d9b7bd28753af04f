"""Open Policy Agent, built from the Go module proxy, serving the Rego policies of the repo."""

from __future__ import annotations

import httpx

from dev.stack.component import Component, GoBinary, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings

OPA_MODULE = "github.com/open-policy-agent/opa"
OPA_VERSION = "v1.22.3"


def component(settings: StackSettings, paths: StackPaths) -> Component:
    cfg = settings.opa
    binary = paths.home / "bin" / "opa"
    policies = settings.repo / "serving_api" / "policies"

    def probe() -> str:
        try:
            httpx.get(f"{cfg.url}/health", params={"bundles": "false"}, timeout=2).raise_for_status()
        except httpx.HTTPError as exc:
            raise ProbeFailed(f"health: {exc}") from exc
        return OPA_VERSION.removeprefix("v")

    return Component(
        name="opa",
        summary="Open Policy Agent (authorization decisions, Rego in serving_api/policies)",
        ports=[Port(cfg.port, settings.env_name("opa", "port"))],
        command=[
            str(binary),
            "run",
            "--server",
            "--addr",
            f"{cfg.host}:{cfg.port}",
            "--log-level",
            "error",
            "--watch",
            str(policies),
        ],
        probe=probe,
        go=[GoBinary(OPA_MODULE, OPA_VERSION, binary)],
    )
