"""Schema migrations of the OLTP database (yoyo, SQL files in serving_api/migrations/), applied by
`shopstream up` once Postgres is healthy, and by `shopstream db migrate`."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

from dev.stack.settings import PostgresSettings, StackSettings


def migrations_dir(settings: StackSettings) -> Path:
    return settings.repo / "serving_api" / "migrations"


def _backend_url(pg: PostgresSettings) -> str:
    return f"postgresql+psycopg://{pg.user}:{pg.password.get_secret_value()}@{pg.host}:{pg.port}/{pg.database}"


def apply_migrations(settings: StackSettings) -> list[str]:
    """Apply what is not applied yet (under yoyo's lock, so two callers cannot race); returns the ids."""
    backend = get_backend(_backend_url(settings.postgres))
    try:
        migrations = read_migrations(str(migrations_dir(settings)))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()


def pending_migrations(settings: StackSettings) -> list[str]:
    backend = get_backend(_backend_url(settings.postgres))
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(migrations_dir(settings))))]
    finally:
        backend.connection.close()
