"""`schemas check` compares a schema with its previous committed version (in a scratch git repo)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from shopstream.contracts.compat import against_history
from shopstream.contracts.compatibility import Level
from shopstream.contracts.files import SchemaFile


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True
    )


def schema(*fields: dict[str, object]) -> str:
    return json.dumps({"type": "record", "name": "R", "namespace": "t", "fields": list(fields)})


def test_history_verdicts(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    path = tmp_path / "t.avsc"
    path.write_text(schema({"name": "a", "type": "int"}))
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "v1")
    assert against_history(SchemaFile(path, path.read_text()), Level.BACKWARD) == []  # unchanged

    path.write_text(schema({"name": "a", "type": "int"}, {"name": "b", "type": "long"}))
    current = SchemaFile(path, path.read_text())
    problems = against_history(current, Level.BACKWARD)
    assert len(problems) == 1 and problems[0].startswith("git ") and "'b'" in problems[0]
    assert against_history(current, Level.FORWARD) == []  # old readers ignore the new field
    assert against_history(current, Level.NONE) == []

    git(tmp_path, "commit", "-qam", "v2")  # committed: now compared with v1, the previous version
    assert against_history(SchemaFile(path, path.read_text()), Level.BACKWARD_TRANSITIVE) != []


def test_a_file_outside_git_has_no_history(tmp_path: Path) -> None:
    path = tmp_path / "t.avsc"
    path.write_text(schema({"name": "a", "type": "int"}))
    assert against_history(SchemaFile(path, path.read_text()), Level.FULL) == []
