"""Apache Cassandra 5.0 (one node on loopback), jars from Maven Central: the serving store of
orders_by_customer and inventory_snapshot. Its keyspace and tables are our CQL migrations
(migrations/cassandra/), applied once the node answers."""

from __future__ import annotations

from dev.stack.component import Component, MavenArtifacts, Port, ProbeFailed
from dev.stack.components.jvm import java_command
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from dev.stack.system import port_open
from dev.stack.templates import render

# Cassandra's own conf/jvm17-server.options (5.0), the JPMS part: what it reaches into on Java 17
JVM17_FLAGS = [
    "-Djdk.attach.allowAttachSelf=true",
    *(
        f"--add-exports={module}=ALL-UNNAMED"
        for module in (
            "java.base/jdk.internal.misc",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
            "jdk.compiler/com.sun.tools.javac.file",
            "jdk.attach/sun.tools.attach",
        )
    ),
    *(
        f"--add-opens={module}=ALL-UNNAMED"
        for module in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "jdk.compiler/com.sun.tools.javac",
            "java.base/java.lang",
            "java.base/java.util",
        )
    ),
    # Netty's direct buffers through Unsafe (else ByteBuffer.allocateDirect, slower)
    "-Dio.netty.tryReflectionSetAccessible=true",
]


def component(settings: StackSettings, paths: StackPaths) -> Component:
    cfg = settings.cassandra
    jars = paths.jars / "cassandra"
    data = paths.data("cassandra")
    conf = paths.conf / "cassandra"  # on the classpath first, as conf/ in the tarball
    yaml = conf / "cassandra.yaml"
    logback = conf / "logback.xml"

    def prepare() -> None:
        templates = settings.repo / "infra" / "conf"
        values = {"host": cfg.host, "port": cfg.port, "storage_port": cfg.storage_port, "data": data}
        render(templates / "cassandra.yaml", yaml, values)
        render(templates / "cassandra-logback.xml", logback, {})
        data.mkdir(parents=True, exist_ok=True)

    def probe() -> str:
        if not port_open(cfg.host, cfg.port):
            raise ProbeFailed(f"nothing listens on {cfg.address}")
        from dev.stack.cassandra_migrations import release_version

        return release_version(cfg)

    return Component(
        name="cassandra",
        summary="Apache Cassandra (one node: orders_by_customer, inventory_snapshot)",
        ports=[
            Port(cfg.port, settings.env_name("cassandra", "port")),
            Port(cfg.storage_port, settings.env_name("cassandra", "storage_port")),
        ],
        command=java_command(
            settings,
            heap=cfg.heap,
            classpath=jars,
            before_jars=[conf],
            main="org.apache.cassandra.service.CassandraDaemon",
            args=[],
            flags=[
                *JVM17_FLAGS,
                f"-Dlogback.configurationFile={logback}",
                f"-Dcassandra.storagedir={data}",
                f"-Dcassandra.logdir={paths.logs}",
                # one node, no peers: don't wait 30 s for a ring or for gossip to settle
                "-Dcassandra.ring_delay_ms=1000",
                "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            ],
        ),
        probe=probe,
        prepare=prepare,
        maven=[MavenArtifacts(settings.repo / "infra" / "maven" / "cassandra" / "pom.xml", jars)],
        needs_java=True,
        config_files=[yaml, logback],
        on_ready=lambda: _migrate(settings),
        stop_wait_seconds=60,  # drains (flushes memtables) on SIGTERM
    )


def _migrate(settings: StackSettings) -> str | None:
    from dev.stack.cassandra_migrations import apply_cql_migrations

    applied = apply_cql_migrations(settings)
    return f"applied CQL migrations {', '.join(applied)}" if applied else None
