"""OpenSearch 2.19 (one node on loopback, no security plugin), jars from Maven Central, started by
our launcher (infra/opensearch/ShopstreamNode.java, compiled by `setup`): the product search index.
Its indices are migrations/opensearch/, applied once the node answers."""

from __future__ import annotations

import httpx

from dev.stack.component import Component, JavaProgram, MavenArtifacts, Port, ProbeFailed
from dev.stack.components.jvm import java_command
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from dev.stack.templates import render

# what the distribution's config/jvm.options sets beyond heap and GC
JVM_FLAGS = [
    "-Dlog4j2.formatMsgNoLookups=true",
    "-Dio.netty.noUnsafe=true",
    "-Dio.netty.noKeySetOptimization=true",
    "-Dio.netty.recycler.maxCapacityPerThread=0",
    "-Dopensearch.set.netty.runtime.available.processors=false",
    "-Dfile.encoding=UTF-8",
]


def component(settings: StackSettings, paths: StackPaths) -> Component:
    cfg = settings.opensearch
    jars = paths.jars / "opensearch"
    launcher = JavaProgram(
        source=settings.repo / "infra" / "opensearch" / "ShopstreamNode.java",
        classpath=jars,
        output=paths.jars / "opensearch-launcher",
    )
    conf = paths.conf / "opensearch"
    yml = conf / "opensearch.yml"
    data = paths.data("opensearch")

    def prepare() -> None:
        values = {
            "host": cfg.host,
            "port": cfg.port,
            "transport_port": cfg.transport_port,
            "data": data,
            "logs": paths.logs / "opensearch",
        }
        render(settings.repo / "infra" / "conf" / "opensearch.yml", yml, values)
        data.mkdir(parents=True, exist_ok=True)

    def probe() -> str:
        try:
            health = httpx.get(f"{cfg.url}/_cluster/health", timeout=2).raise_for_status().json()
            root = httpx.get(f"{cfg.url}/", timeout=2).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProbeFailed(f"HTTP: {exc}") from exc
        if health.get("status") not in ("green", "yellow"):
            raise ProbeFailed(f"cluster health {health.get('status')}")
        return str(root["version"]["number"])

    return Component(
        name="opensearch",
        summary="OpenSearch (one node, no security plugin: product search)",
        ports=[
            Port(cfg.port, settings.env_name("opensearch", "port")),
            Port(cfg.transport_port, settings.env_name("opensearch", "transport_port")),
        ],
        command=java_command(
            settings,
            heap=cfg.heap,
            classpath=jars,
            before_jars=[launcher.output],
            main=launcher.source.stem,
            args=[str(conf)],
            flags=JVM_FLAGS,
        ),
        probe=probe,
        prepare=prepare,
        maven=[MavenArtifacts(settings.repo / "infra" / "maven" / "opensearch" / "pom.xml", jars)],
        javac=[launcher],
        needs_java=True,
        config_files=[yml],
        on_ready=lambda: _indices(settings),
    )


def _indices(settings: StackSettings) -> str | None:
    from dev.stack.search_indices import apply_indices

    changes = apply_indices(settings)
    return ", ".join(changes) if changes else None
