"""The previous committed version of a schema file, for compatibility against git history."""

from __future__ import annotations

import subprocess
from pathlib import Path


def previous_version(path: Path) -> tuple[str, str] | None:
    """(commit, text) of the newest committed version of `path` that differs from the file as
    it is now; None when there is none (a new file, or no git)."""
    versions = previous_versions(path)
    return versions[0] if versions else None


def previous_versions(path: Path) -> list[tuple[str, str]]:
    """Every distinct committed version of `path` other than the file as it is now, newest first."""
    cwd = path.parent
    try:
        top = _git(cwd, "rev-parse", "--show-toplevel").strip()
        rel = str(path.resolve().relative_to(Path(top).resolve()))
        commits = _git(cwd, "log", "--format=%H", "--", rel).split()
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError):
        return []
    seen = {path.read_text()}
    found = []
    for commit in commits:
        try:
            text = _git(cwd, "show", f"{commit}:{rel}")
        except subprocess.CalledProcessError:
            continue  # deleted in that commit
        if text not in seen:
            seen.add(text)
            found.append((commit[:12], text))
    return found


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout
