"""docker-compose.yml cannot run here, so keep it honest by reading it: the same services, on the
same host ports, as the local stack's component registry."""

from __future__ import annotations

from pathlib import Path

import yaml

from dev.stack import StackSettings
from dev.stack.components import build_components

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_has_the_local_stacks_services_on_the_same_ports(tmp_path: Path) -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    components = build_components(StackSettings(home=tmp_path))
    # plus `init`, the one-shot that does what `shopstream up` does after the stack is healthy, and
    # `clickhouse`, the server the OLAP service uses there instead of the embedded engine (chdb)
    assert set(services) == {c.name for c in components} | {"init", "clickhouse"}
    for c in components:
        if c.port is None:
            continue
        published = {int(p.split(":")[-2]) for p in services[c.name].get("ports", [])}
        assert c.port in published, f"{c.name}: compose publishes {published}, the local stack uses {c.port}"


def test_compose_uses_the_local_stacks_credentials_and_logical_wal(tmp_path: Path) -> None:
    pg = StackSettings(home=tmp_path).postgres
    service = yaml.safe_load(COMPOSE.read_text())["services"]["postgres"]
    env = service["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == (
        pg.user,
        pg.password.get_secret_value(),
        pg.database,
    )
    assert "wal_level=logical" in service["command"]
