"""Pure parts of the stack: settings, process-manager config, install checks. No processes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dev.stack import StackSettings
from dev.stack.component import Component, MavenArtifacts, Port
from dev.stack.components import build_components
from dev.stack.installer import _java_major, stale_maven
from dev.stack.paths import StackPaths
from dev.stack.supervisor import _program_section


def test_ports_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHOPSTREAM_HOME", str(tmp_path))
    monkeypatch.setenv("SHOPSTREAM_KAFKA__PORT", "19092")
    monkeypatch.setenv("SHOPSTREAM_POSTGRES__PORT", "15432")
    settings = StackSettings()
    assert settings.kafka.bootstrap == "127.0.0.1:19092"
    ports = {c.name: [p.number for p in c.ports] for c in build_components(settings)}
    assert ports == {
        "postgres": [15432],
        "redis": [6379],
        "cassandra": [9042, 7000],
        "opensearch": [9200, 9300],
        "kafka": [19092, 9093],
        "connect": [8083],
        "schema-registry": [8081],
        "opa": [8181],
        "payment-gateway": [8090],
        "legacy-payment-gateway": [8091],
        "inventory-grpc": [50051],
        "api": [8000],
        "stream-inventory-snapshot": [],
        "stream-revenue-windows": [],
        "stream-flash-sale-price-map": [],
        "stream-serving-caches": [],
        "stream-orders-by-customer": [],
        "stream-product-search-index": [],
        "olap": [8124],
        "rabbitmq": [5672, 25672],
        "webhook-fanout": [],
        "webhook-dispatcher": [9465],
        "mosquitto": [1883],
        "iot-ingest": [8097],
        "simulator": [],
        "devices": [],
    }
    assert settings.env_name("kafka", "port") == "SHOPSTREAM_KAFKA__PORT"


def test_defaults_are_the_conventional_ports(tmp_path: Path) -> None:
    ports = {c.name: c.port for c in build_components(StackSettings(home=tmp_path))}
    assert ports == {
        "postgres": 5432,
        "redis": 6379,
        "cassandra": 9042,
        "opensearch": 9200,
        "kafka": 9092,
        "connect": 8083,
        "schema-registry": 8081,
        "opa": 8181,
        "payment-gateway": 8090,
        "legacy-payment-gateway": 8091,
        "inventory-grpc": 50051,
        "api": 8000,
        "stream-inventory-snapshot": None,
        "stream-revenue-windows": None,
        "stream-flash-sale-price-map": None,
        "stream-serving-caches": None,
        "stream-orders-by-customer": None,
        "stream-product-search-index": None,
        "olap": 8124,
        "rabbitmq": 5672,
        "webhook-fanout": None,
        "webhook-dispatcher": 9465,
        "mosquitto": 1883,
        "iot-ingest": 8097,
        "simulator": None,
        "devices": None,
    }


def component(tmp_path: Path, **kwargs: object) -> Component:
    base: dict[str, object] = {
        "name": "thing",
        "summary": "s",
        "ports": [Port(1, "X")],
        "command": ["/bin/thing", "--flag=50%"],
        "probe": lambda: "1",
    }
    return Component(**{**base, **kwargs})  # type: ignore[arg-type]


def test_program_section_escapes_percent_and_logs_to_the_component_log(tmp_path: Path) -> None:
    lines = _program_section(component(tmp_path), StackPaths(tmp_path))
    assert "command=/bin/thing --flag=50%%" in lines
    assert f"stdout_logfile={tmp_path / 'logs' / 'thing.log'}" in lines
    assert "autorestart=true" in lines
    assert not any(line.startswith("user=") for line in lines)


def test_dependencies_are_waited_for_and_users_and_artifacts_recorded(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    c = component(
        tmp_path, wait_for=[("127.0.0.1", 9092)], user="postgres", maven=[MavenArtifacts(pom, tmp_path / "jars")]
    )
    lines = _program_section(c, StackPaths(tmp_path))
    command = next(line for line in lines if line.startswith("command="))
    assert "-m dev.stack.waitfor 127.0.0.1:9092 -- /bin/thing" in command
    assert "user=postgres" in lines
    env = next(line for line in lines if line.startswith("environment="))
    pom.write_text("<project><!-- changed --></project>")
    assert next(line for line in _program_section(c, StackPaths(tmp_path)) if line.startswith("environment=")) != env


@pytest.mark.parametrize(
    ("line", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("garbage", None),
    ],
)
def test_java_versions_are_read(line: str, major: int | None) -> None:
    assert _java_major(line) == major


def test_maven_artifacts_are_stale_until_stamped_for_this_pom(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    out = tmp_path / "jars"
    c = component(tmp_path, maven=[MavenArtifacts(pom, out)])
    paths = StackPaths(tmp_path)
    assert stale_maven([c], paths) == [MavenArtifacts(pom, out)]
    out.mkdir()
    (out / "a-1.0.jar").write_bytes(b"")
    paths.stamps.mkdir(parents=True)
    (paths.stamps / "maven-jars").write_text(hashlib.sha256(pom.read_bytes()).hexdigest())
    assert stale_maven([c], paths) == []
    pom.write_text("<project><!-- new version --></project>")
    assert stale_maven([c], paths) == [MavenArtifacts(pom, out)]


def test_the_stack_runs_every_dataflow_of_the_catalogue() -> None:
    from streams import DATAFLOW_NAMES
    from streams.catalog import DATAFLOWS

    assert set(DATAFLOW_NAMES) == set(DATAFLOWS)
    assert {spec.component() for spec in DATAFLOWS.values()} <= {c.name for c in build_components(StackSettings())}
