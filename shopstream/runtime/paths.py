"""The repository the packages were installed from (an editable install): where the defaults of
every deployable's local files point (`.local/`, `dbt/`, `schemas/`)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
