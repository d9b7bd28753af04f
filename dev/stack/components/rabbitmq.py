"""RabbitMQ from Debian's package: the partner webhooks' work queue, delay queues and dead letters.

One node of our own, in the foreground, its database under `.local/data/rabbitmq` (node name,
ports, Erlang cookie and config all ours, nothing in /etc or /var/lib/rabbitmq). A fresh node
creates the `shopstream` account from the rendered config (`default_user`/`default_pass`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dev.stack.component import AptPackage, Component, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import RabbitMQSettings, StackSettings
from dev.stack.system import port_open
from dev.stack.templates import render

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
NODENAME = "shopstream@localhost"


def environment(settings: StackSettings, paths: StackPaths) -> dict[str, str]:
    """What `rabbitmq-server` (and `rabbitmqctl`, to reach the same node) need: all paths ours."""
    cfg, data = settings.rabbitmq, paths.data("rabbitmq")
    return {
        "HOME": str(data),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": NODENAME,
        "RABBITMQ_NODE_IP_ADDRESS": cfg.host,
        "RABBITMQ_NODE_PORT": str(cfg.port),
        "RABBITMQ_DIST_PORT": str(cfg.dist_port),
        "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data / "log"),
        "RABBITMQ_CONFIG_FILE": str(paths.conf / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(paths.conf / "rabbitmq-enabled-plugins"),
        "RABBITMQ_PID_FILE": str(data / "rabbitmq.pid"),
        # Erlang's port mapper and the node's distribution port: loopback only (AMQP is the API)
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }


def component(settings: StackSettings, paths: StackPaths) -> Component:
    cfg = settings.rabbitmq
    data = paths.data("rabbitmq")
    conf = paths.conf / "rabbitmq.conf"
    plugins = paths.conf / "rabbitmq-enabled-plugins"

    def prepare() -> None:
        for folder in (data, data / "mnesia", data / "log"):
            folder.mkdir(parents=True, exist_ok=True)
        render(
            settings.repo / "infra" / "conf" / "rabbitmq.conf",
            conf,
            {"host": cfg.host, "port": cfg.port, "user": cfg.user, "password": cfg.password.get_secret_value()},
        )
        if not plugins.exists():
            plugins.write_text("[].\n")  # no plugins (no management UI): AMQP only

    return Component(
        name="rabbitmq",
        summary="RabbitMQ (partner webhooks: work queue, retry delay queues, DLQ)",
        ports=[
            Port(cfg.port, settings.env_name("rabbitmq", "port")),
            Port(cfg.dist_port, settings.env_name("rabbitmq", "dist_port")),
        ],
        command=[str(RABBITMQ_BIN / "rabbitmq-server")],
        probe=lambda: asyncio.run(server_version(cfg)),
        prepare=prepare,
        apt=[AptPackage("rabbitmq-server", RABBITMQ_BIN / "rabbitmq-server")],
        environment=environment(settings, paths),
        config_files=[conf],
        stop_wait_seconds=60,
    )


async def server_version(cfg: RabbitMQSettings) -> str:
    """Log in over AMQP as the stack's account; the broker's version."""
    import aio_pika  # the integrations extra; imported only when the probe runs

    if not port_open(cfg.host, cfg.port):
        raise ProbeFailed(f"nothing listens on {cfg.host}:{cfg.port}")
    try:
        connection = await aio_pika.connect(cfg.url, timeout=2)
    except Exception as exc:  # refused, timed out, login refused: all mean "not (yet) up"
        raise ProbeFailed(f"AMQP connect: {exc!r}") from exc
    try:
        underlay = connection.transport
        properties = underlay.connection.server_properties if underlay is not None else {}
        return str(properties.get("version", "?"))
    finally:
        await connection.close()
