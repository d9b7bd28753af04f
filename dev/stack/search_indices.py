"""The OpenSearch indices of the serving store: `migrations/opensearch/<alias>_vN.json` (settings and
mappings) is the index `<alias>_vN` behind the alias `<alias>`. Applied by `shopstream up` once
OpenSearch answers, and by `shopstream db migrate-stores`; applying again changes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from dev.stack.errors import StackError
from dev.stack.settings import StackSettings

VERSIONED = re.compile(r"^(?P<alias>[a-z0-9_]+)_v(?P<version>\d+)$")


def indices_dir(settings: StackSettings) -> Path:
    return settings.repo / "migrations" / "opensearch"


def latest_versions(folder: Path) -> dict[str, tuple[int, Path]]:
    """alias -> (highest version, its file)."""
    out: dict[str, tuple[int, Path]] = {}
    for path in folder.glob("*.json"):
        match = VERSIONED.match(path.stem)
        if match is None:
            raise StackError(f"{path}: an index file is named <alias>_v<N>.json")
        alias, version = match["alias"], int(match["version"])
        if alias not in out or version > out[alias][0]:
            out[alias] = (version, path)
    return out


def apply_indices(settings: StackSettings) -> list[str]:
    """Make each alias point at its latest versioned index, created with its file's settings and
    mappings (and filled from the index the alias pointed at before); returns what changed."""
    changes = []
    try:
        with httpx.Client(base_url=settings.opensearch.url, timeout=60) as http:
            for alias, (version, path) in sorted(latest_versions(indices_dir(settings)).items()):
                changes += _apply_index(http, alias, f"{alias}_v{version}", json.loads(path.read_text()))
    except httpx.HTTPError as exc:
        raise StackError(f"OpenSearch indices ({indices_dir(settings)}): {exc}") from exc
    return changes


def _apply_index(http: httpx.Client, alias: str, index: str, body: dict[str, Any]) -> list[str]:
    changes: list[str] = []
    holders = http.get(f"/_alias/{alias}")
    previous = sorted(holders.json()) if holders.status_code == 200 else []
    rebuilt = re.compile(re.escape(index) + r"_r\d+")
    if len(previous) == 1 and rebuilt.fullmatch(previous[0]):
        # a replay's rebuild of this version is live (`shopstream replay promote`): it has this
        # version's mapping; additions of the file are put on it
        _ok(http.put(f"/{previous[0]}/_mapping", json=body["mappings"]), f"mapping of {previous[0]}")
        return changes
    if http.head(f"/{index}").status_code == 404:
        _ok(http.put(f"/{index}", json=body), f"creating {index}")
        changes.append(f"created {index}")
        created = True
    else:
        # the same mapping again is a no-op; an added field is accepted; a changed one is refused
        refused = http.put(f"/{index}/_mapping", json=body["mappings"])
        _ok(refused, f"mapping of {index} (a changed field needs {alias}_v<N+1>.json)")
        # the file's dynamic settings too (the refresh interval); shards are fixed at creation
        dynamic = {k: v for k, v in body.get("settings", {}).get("index", {}).items() if k == "refresh_interval"}
        if dynamic:
            _ok(http.put(f"/{index}/_settings", json={"index": dynamic}), f"settings of {index}")
        created = False
    if previous == [index]:
        return changes
    if created:
        for old in previous:
            copy = {"source": {"index": old}, "dest": {"index": index}}
            _ok(http.post("/_reindex", params={"refresh": "true"}, json=copy, timeout=600), f"reindex {old}")
            changes.append(f"copied {old} into {index}")
    actions: list[dict[str, Any]] = [{"remove": {"index": old, "alias": alias}} for old in previous]
    actions.append({"add": {"index": index, "alias": alias}})
    _ok(http.post("/_aliases", json={"actions": actions}), f"moving alias {alias}")
    changes.append(f"alias {alias} -> {index}")
    return changes


def _ok(response: httpx.Response, what: str) -> None:
    if response.is_error:
        raise StackError(f"OpenSearch: {what}: {response.status_code} {response.text[:300]}")
