"""The OpenSearch sink: a batch's `Document` writes as `_bulk` requests (up to CHUNK actions each)
with external versioning, then the source positions they reflect.

Idempotent by version: every action carries `version_type=external` and the Document's version,
and OpenSearch refuses (409 per item) a version at or below the one it holds, so a replayed or
reordered batch writes nothing older. A refused item is "nothing new", not an error; a delete of
a document that is not there (404) neither. A delete is versioned too: the tombstone keeps an older
index action out for `index.gc_deletes` (60 s by default).

The positions go to the index behind the alias `projection_progress`
(migrations/opensearch/projection_progress_v1.json): one document per group (the dataflow's
consumer group), `positions` = {partition: next offset}, merged by a script that never moves a
position back, written only once every item of the batch's bulk requests is acknowledged, with no
forced refresh (reads by id are real-time). Before writing, the sink reads back the positions it
recorded last: an OpenSearch that lost writes holds older ones, and `StoreRegressed` stops the
engine, whose restart resumes from the store's positions (`streams.core.resume_from`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from shopstream.runtime.settings import OpenSearch
from streams.core import Document, Write, coalesce
from streams.sinks.redis import StoreRegressed

PROGRESS_ALIAS = "projection_progress"
CHUNK = 1_000  # actions per _bulk request
# merge the batch's positions into the group's document, keeping the higher of two
_MERGE = (
    "if (ctx._source.positions == null) { ctx._source.positions = new HashMap(); }"
    " for (e in params.positions.entrySet()) {"
    "   def held = ctx._source.positions.get(e.getKey());"
    "   if (held == null || ((Number) held).longValue() < ((Number) e.getValue()).longValue()) {"
    "     ctx._source.positions.put(e.getKey(), e.getValue());"
    "   }"
    " }"
    " ctx._source.updated_at = params.now;"
)
_encode = msgspec.json.Encoder().encode


class OpenSearchUnavailable(RuntimeError):
    """OpenSearch refused or did not answer a write (the engine stops; supervisord restarts it)."""


class OpenSearchSink:
    def __init__(
        self, settings: OpenSearch, group: str, progress_alias: str = PROGRESS_ALIAS, wait_s: float = 180.0
    ) -> None:
        self.group = group
        self.progress_alias = progress_alias
        self.http = httpx.Client(
            base_url=settings.url.rstrip("/"),
            timeout=max(settings.timeout, 30.0),  # a bulk of CHUNK documents can take a while
            headers={"Content-Type": "application/json"},
        )
        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a log line per request of each batch
        self._wait_for_indices(wait_s)
        self.wrote: dict[str, int] = {}  # partition → the last position this sink recorded
        self.changed = 0  # documents written or deleted (refused versions not counted)
        self.refused = 0  # actions OpenSearch refused as not newer (409) or deletes of nothing (404)

    def _wait_for_indices(self, wait_s: float) -> None:
        """Until the positions' alias exists (`up` makes the indices once OpenSearch answers, all
        in one step): a dataflow started with OpenSearch waits for them, up to `wait_s`, instead of
        failing its first writes (indices are never made by a write: `action.auto_create_index`)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if self.http.get(f"/_alias/{self.progress_alias}").status_code == 200:
                    return
                why = f"no alias {self.progress_alias} yet"
            except httpx.HTTPError as exc:
                why = type(exc).__name__
            if time.monotonic() > deadline:
                raise OpenSearchUnavailable(f"OpenSearch: {why} after {wait_s:.0f} s")
            logging.getLogger("shopstream.streams").info("waiting for OpenSearch's indices (%s)", why)
            time.sleep(2)

    def progress(self) -> dict[str, int]:
        response = self._send("GET", f"/{self.progress_alias}/_doc/{self._id()}")
        if response.status_code == 404:
            return {}
        self._check(response, "reading the positions")
        source = response.json().get("_source") or {}
        return {p: int(o) for p, o in (source.get("positions") or {}).items()}

    def apply(self, writes: Sequence[Write], progress: Mapping[str, int]) -> int:
        docs = [w for w in coalesce([w for w in writes if type(w) is Document]) if isinstance(w, Document)]
        if not docs and not progress:
            return self.changed
        if self.wrote:
            held = self.progress()
            behind = {p: (held.get(p, -1), at) for p, at in self.wrote.items() if held.get(p, -1) < at}
            if behind:
                raise StoreRegressed(f"OpenSearch lost writes: it holds {behind} (held, written) for {self.group}")
        for start in range(0, len(docs), CHUNK):
            self._bulk(docs[start : start + CHUNK])
        if progress:
            body = {
                "script": {
                    "lang": "painless",
                    "source": _MERGE,
                    "params": {"positions": dict(progress), "now": int(time.time() * 1000)},
                },
                "upsert": {"positions": dict(progress), "updated_at": int(time.time() * 1000)},
            }
            response = self._send(
                "POST",
                f"/{self.progress_alias}/_update/{self._id()}",
                content=_encode(body),
                params={"retry_on_conflict": "5"},
            )
            self._check(response, "recording the positions")
            self.wrote.update(progress)
        return self.changed

    def _bulk(self, docs: Sequence[Document]) -> None:
        lines: list[bytes] = []
        for d in docs:
            meta = {"_index": d.index, "_id": d.id, "version": d.version, "version_type": "external"}
            if d.body is None:
                lines.append(_encode({"delete": meta}))
            else:
                lines.append(_encode({"index": meta}))
                lines.append(_encode(d.body))
        lines.append(b"")
        response = self._send(
            "POST", "/_bulk", content=b"\n".join(lines), headers={"Content-Type": "application/x-ndjson"}
        )
        self._check(response, "bulk")
        answer = response.json()
        failed: list[Any] = []
        for entry in answer.get("items", []):
            ((action, result),) = entry.items()
            status = int(result.get("status", 500))
            if status < 300:
                self.changed += 1
            elif status == 409 or (status == 404 and action == "delete"):
                self.refused += 1  # an older or equal version (a replay), or a delete of nothing
            else:
                failed.append(result)
        if failed:
            error = failed[0].get("error") or {}
            kind = error.get("type", "?") if isinstance(error, dict) else str(error)[:200]
            raise OpenSearchUnavailable(f"OpenSearch refused {len(failed)} of {len(docs)} documents: {kind}")

    def _id(self) -> str:
        return quote(self.group, safe="")  # the group's document id, as a path segment

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OpenSearchUnavailable(f"OpenSearch: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _check(response: httpx.Response, what: str) -> None:
        if response.is_error:
            raise OpenSearchUnavailable(f"OpenSearch: {what}: {response.status_code} {response.text[:300]}")

    def forget(self, partitions: Sequence[str]) -> None:
        """Partitions this process no longer reads (a rebalance): another may write them."""
        for p in partitions:
            self.wrote.pop(p, None)

    def close(self) -> None:
        self.http.close()
