"""The schema files of `schemas/`: one `<event type>.avsc` per subject `<event type>-value`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


@dataclass(frozen=True)
class SchemaFile:
    path: Path
    text: str

    @property
    def topic(self) -> str:
        return self.path.name.removesuffix(".avsc")

    @property
    def subject(self) -> str:
        return f"{self.topic}-value"

    def json(self) -> Any:
        return json.loads(self.text)


def load_schema_files(folder: Path = SCHEMAS_DIR) -> list[SchemaFile]:
    return [SchemaFile(p, p.read_text()) for p in sorted(folder.glob("*.avsc"))]


def find_schema_file(subject_or_topic: str, folder: Path = SCHEMAS_DIR) -> SchemaFile:
    topic = subject_or_topic.removesuffix("-value")
    path = folder / f"{topic}.avsc"
    if not path.exists():
        raise FileNotFoundError(f"no schema file {path} for {subject_or_topic}")
    return SchemaFile(path, path.read_text())
