"""Kafka Connect (distributed mode, one worker) with the Debezium Postgres connector plugin."""

from __future__ import annotations

import httpx

from dev.stack.component import Component, MavenArtifacts, Port, ProbeFailed
from dev.stack.components.jvm import java_command
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from dev.stack.templates import render

DEBEZIUM_POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"


def component(settings: StackSettings, paths: StackPaths) -> Component:
    cfg = settings.connect
    jars = paths.jars / "kafka"  # the worker runs from the Kafka distribution, as bin/connect-distributed.sh does
    debezium = paths.connect_plugins / "debezium-connector-postgres"
    props = paths.conf / "connect-distributed.properties"

    def prepare() -> None:
        render(
            settings.repo / "infra" / "conf" / "connect-distributed.properties",
            props,
            {
                "bootstrap": settings.kafka.bootstrap,
                "group_id": cfg.group_id,
                "host": cfg.host,
                "port": cfg.port,
                "plugin_path": paths.connect_plugins,
            },
        )

    def probe() -> str:
        try:
            root = httpx.get(f"{cfg.url}/", timeout=2).raise_for_status().json()
            plugins = httpx.get(f"{cfg.url}/connector-plugins", timeout=5).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProbeFailed(f"REST API: {exc}") from exc
        found = {p["class"]: p.get("version", "?") for p in plugins}
        if DEBEZIUM_POSTGRES not in found:
            raise ProbeFailed(f"Debezium Postgres plugin not loaded from {debezium}")
        return f"{root['version']}+dbz-{found[DEBEZIUM_POSTGRES]}"

    return Component(
        name="connect",
        summary="Kafka Connect + Debezium Postgres connector",
        ports=[Port(cfg.port, settings.env_name("connect", "port"))],
        command=java_command(
            settings,
            heap=cfg.heap,
            classpath=jars,
            main="org.apache.kafka.connect.cli.ConnectDistributed",
            args=[str(props)],
        ),
        probe=probe,
        prepare=prepare,
        maven=[
            MavenArtifacts(settings.repo / "infra" / "maven" / "kafka" / "pom.xml", jars),
            MavenArtifacts(settings.repo / "infra" / "maven" / "debezium-postgres" / "pom.xml", debezium),
        ],
        needs_java=True,
        on_ready=lambda: _apply_connectors(settings),
        config_files=[props],
        wait_for=[(settings.kafka.host, settings.kafka.port)],
    )


def _apply_connectors(settings: StackSettings) -> str | None:
    """Apply every connector config of connectors/debezium/ (unchanged ones are left alone)."""
    from connectors import ApplyResult, ConnectClient, load_config

    changed = []
    with ConnectClient(settings.connect.url) as client:
        for path in sorted((settings.repo / "connectors" / "debezium").glob("*.json")):
            config = load_config(path, settings.connector_values())
            result = client.apply(config)
            client.wait_running(config.name, timeout=90, settle=0 if result is ApplyResult.UNCHANGED else 3)
            if result is not ApplyResult.UNCHANGED:
                changed.append(f"{config.name} {result.value}")
    return f"connectors: {', '.join(changed)}" if changed else None
