"""Redis from Debian's package: caches and the fast projections (inventory, flash-sale prices)."""

from __future__ import annotations

from pathlib import Path

import redis

from dev.stack.component import AptPackage, Component, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings

REDIS_SERVER = Path("/usr/bin/redis-server")


def component(settings: StackSettings, paths: StackPaths) -> Component:
    cfg = settings.redis
    data = paths.data("redis")

    def probe() -> str:
        client = redis.Redis(host=cfg.host, port=cfg.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return str(client.info("server")["redis_version"])
        except redis.RedisError as exc:
            raise ProbeFailed(str(exc)) from exc
        finally:
            client.close()

    return Component(
        name="redis",
        summary="Redis (caches, inventory and price projections)",
        ports=[Port(cfg.port, settings.env_name("redis", "port"))],
        command=[
            str(REDIS_SERVER),
            "--port",
            str(cfg.port),
            "--bind",
            cfg.host,
            "--dir",
            str(data),
            "--daemonize",
            "no",
            # durable as the projections need it: the append-only file, fsynced every second (a
            # kill -9 loses at most that second; the sinks' positions tell the dataflows what to
            # write again), plus RDB snapshots
            "--save",
            "60 1000",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--logfile",
            "",
        ],
        probe=probe,
        prepare=lambda: data.mkdir(parents=True, exist_ok=True),
        apt=[AptPackage("redis-server", REDIS_SERVER)],
    )
