"""Apache Kafka 4.x in KRaft mode (single broker + controller), jars from Maven Central."""

from __future__ import annotations

import base64
import subprocess
import uuid

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from dev.stack.component import Component, MavenArtifacts, Port, ProbeFailed
from dev.stack.components.jvm import jar_version, java_command
from dev.stack.errors import StackError
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from dev.stack.system import port_open
from dev.stack.templates import render
from shopstream.runtime.topics import TopicsNotCreated, create_event_topics


def component(settings: StackSettings, paths: StackPaths) -> Component:
    cfg = settings.kafka
    jars = paths.jars / "kafka"
    data = paths.data("kafka")
    props = paths.conf / "kafka-server.properties"

    def prepare() -> None:
        render(
            settings.repo / "infra" / "conf" / "kafka-server.properties",
            props,
            {
                "host": cfg.host,
                "port": cfg.port,
                "controller_port": cfg.controller_port,
                "log_dirs": data,
            },
        )
        if (data / "meta.properties").exists():
            return
        # first start: format the KRaft storage with a cluster id kept beside the config
        id_file = paths.conf / "kafka-cluster.id"
        if not id_file.exists():
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        fmt = java_command(
            settings,
            heap="256m",
            classpath=jars,
            main="kafka.tools.StorageTool",
            args=["format", "-t", id_file.read_text().strip(), "-c", str(props)],
        )
        proc = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(f"formatting Kafka storage in {data} failed: {proc.stderr.strip()[-300:]}")

    def probe() -> str:
        if not port_open(cfg.host, cfg.port):
            raise ProbeFailed(f"nothing listens on {cfg.bootstrap}")
        admin = AdminClient({"bootstrap.servers": cfg.bootstrap, "socket.timeout.ms": 2000})
        try:
            metadata = admin.list_topics(timeout=3)
        except KafkaException as exc:
            raise ProbeFailed(str(exc)) from exc
        if not metadata.brokers:
            raise ProbeFailed("no broker in the metadata yet")
        return jar_version(jars, "kafka-clients")

    return Component(
        name="kafka",
        summary="Apache Kafka (KRaft, single broker)",
        ports=[
            Port(cfg.port, settings.env_name("kafka", "port")),
            Port(cfg.controller_port, settings.env_name("kafka", "controller_port")),
        ],
        command=java_command(settings, heap=cfg.heap, classpath=jars, main="kafka.Kafka", args=[str(props)]),
        probe=probe,
        prepare=prepare,
        maven=[MavenArtifacts(settings.repo / "infra" / "maven" / "kafka" / "pom.xml", jars)],
        needs_java=True,
        config_files=[props],
        on_ready=lambda: _event_topics(cfg.bootstrap),
    )


def _event_topics(bootstrap: str) -> str | None:
    try:
        return create_event_topics(bootstrap)
    except TopicsNotCreated as exc:
        raise StackError(str(exc)) from exc
