"""Postgres 15 from Debian's package, in a cluster of our own with `wal_level=logical` (Debezium)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg

from dev.stack.component import AptPackage, Component, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import PostgresSettings, StackSettings
from dev.stack.system import chown, run_as, service_user

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def component(settings: StackSettings, paths: StackPaths) -> Component:
    pg = settings.postgres
    user = service_user("postgres")  # Postgres refuses to run as root
    root = paths.service_root(user)
    data = root / "data" / "postgres"
    sockets = root / "run" / "postgres"

    def prepare() -> None:
        if root != paths.home:
            root.mkdir(parents=True, exist_ok=True, mode=0o755)
            root.chmod(0o755)
        sockets.mkdir(parents=True, exist_ok=True)
        chown(sockets, user)
        if (data / "PG_VERSION").exists():
            return
        _init_cluster(data, pg, user)

    return Component(
        name="postgres",
        summary="Postgres 15, wal_level=logical",
        ports=[Port(pg.port, settings.env_name("postgres", "port"))],
        command=[
            str(PG_BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(pg.port),
            "-k",
            str(sockets),
            "-c",
            f"listen_addresses={pg.host}",
            "-c",
            "wal_level=logical",
            "-c",
            "max_wal_senders=20",
            "-c",
            "max_replication_slots=20",
            "-c",
            "shared_buffers=128MB",
        ],
        probe=lambda: asyncio.run(_server_version(pg)),
        prepare=prepare,
        apt=[AptPackage("postgresql-15", PG_BIN / "postgres")],
        user=user,
        on_ready=lambda: _migrate(settings),
        stop_signal="INT",  # "fast" shutdown: SIGTERM would wait for every client to leave
        stop_wait_seconds=60,
    )


def _init_cluster(data: Path, pg: PostgresSettings, user: str | None) -> None:
    """initdb into a scratch folder, create the application database, then move it into place,
    so that an interrupted first start leaves nothing half-made."""
    data.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".initdb-", dir=data.parent))
    chown(scratch, user)
    pwfile = scratch / "pwfile"
    pwfile.write_text(pg.password.get_secret_value() + "\n")
    chown(pwfile, user)
    cluster = scratch / "cluster"
    try:
        run_as(
            user,
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(cluster),
                "-U",
                pg.user,
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
        )
        # single-user mode: no server, no port needed yet
        run_as(
            user,
            [str(PG_BIN / "postgres"), "--single", "-D", str(cluster), "postgres"],
            input_text=f'CREATE DATABASE "{pg.database}";\n',
        )
        cluster.rename(data)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _server_version(pg: PostgresSettings) -> str:
    try:
        conn = await asyncpg.connect(pg.dsn, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise ProbeFailed(f"connect: {exc}") from exc
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return str(version).split()[0]


def _migrate(settings: StackSettings) -> str | None:
    from dev.stack.migrations import apply_migrations

    applied = apply_migrations(settings)
    return f"applied migrations {', '.join(applied)}" if applied else None
