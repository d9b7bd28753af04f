"""Connector configs are JSON files `{"name": ..., "config": {...}}` whose string values may hold
`${placeholders}` filled from the stack settings (so ports and passwords are never copied)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from shopstream.stack.settings import StackSettings

CONFIG_DIR = Path(__file__).resolve().parent / "debezium"


@dataclass(frozen=True)
class ConnectorConfig:
    name: str
    config: dict[str, str]


def template_values(settings: StackSettings) -> dict[str, str]:
    pg = settings.postgres
    return {
        # as seen from the Connect worker, which is not always where we are
        "postgres_host": settings.connect.postgres_host or pg.host,
        "postgres_port": str(pg.port),
        "postgres_user": pg.user,
        "postgres_password": pg.password.get_secret_value(),
        "postgres_database": pg.database,
        "kafka_bootstrap": settings.kafka.bootstrap,
    }


def load_config(path: Path, settings: StackSettings, **extra: str) -> ConnectorConfig:
    """Read a config file and fill its placeholders; an unknown placeholder is an error."""
    try:
        raw: Any = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON connector config ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("config"), dict):
        raise ValueError(f'{path}: expected {{"name": "...", "config": {{...}}}}')
    values = {**template_values(settings), **extra}
    try:
        config = {k: Template(str(v)).substitute(values) for k, v in raw["config"].items()}
        name = Template(raw["name"]).substitute(values)
    except KeyError as exc:
        raise ValueError(f"{path}: unknown placeholder ${{{exc.args[0]}}}; known: {', '.join(values)}") from exc
    return ConnectorConfig(name=name, config=config)
