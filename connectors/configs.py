"""Connector configs are JSON files `{"name": ..., "config": {...}}` whose string values may hold
`${placeholders}` filled from settings (so ports and passwords are never copied into them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any


@dataclass(frozen=True)
class ConnectorConfig:
    name: str
    config: dict[str, str]


def load_config(path: Path, values: Mapping[str, str], **extra: str) -> ConnectorConfig:
    """Read a config file and fill its `${placeholders}` from `values` (the stack's are
    `StackSettings.connector_values()`); an unknown placeholder is an error."""
    try:
        raw: Any = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON connector config ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("config"), dict):
        raise ValueError(f'{path}: expected {{"name": "...", "config": {{...}}}}')
    values = {**values, **extra}
    try:
        config = {k: Template(str(v)).substitute(values) for k, v in raw["config"].items()}
        name = Template(raw["name"]).substitute(values)
    except KeyError as exc:
        raise ValueError(f"{path}: unknown placeholder ${{{exc.args[0]}}}; known: {', '.join(values)}") from exc
    return ConnectorConfig(name=name, config=config)
