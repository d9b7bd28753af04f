"""Parity between two generations of a projection, store by store: every key's value reduced to a
digest (an 8-byte hash of its canonical form), the digests summed per shard (order-independent:
the order keys are read in does not matter), the shards compared, and only the keys of shards
that differ compared one by one and read again with both values.

What counts as a key's value, per store:
- Redis: a hash's fields (sorted) and its expiry instant (set from event time by the projections,
  so a replay sets the same one); a sorted set's members and scores; a string's value (without
  expiry: floors expire relative to when they were written). A key on one side only that expires
  within `EXPIRY_MARGIN_MS` is not a difference (it is going on the other side too).
- Cassandra: every column of the row, by its primary key.
- OpenSearch: a document's `_source` and its (external) `_version`, by `_id`."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

SHARDS = 64
EXPIRY_MARGIN_MS = 5_000
CHUNK = 1_000
_encode = msgspec.json.Encoder(order="sorted").encode


def digest(key: str, value: Any) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode() + b"\0" + _encode(value), digest_size=8).digest(), "big")


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


@dataclass
class Side:
    """One generation's keys: key → (digest, expires at ms or None)."""

    keys: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def add(self, key: str, value: Any, expires_at: int | None = None) -> None:
        self.keys[key] = (digest(key, value), expires_at)

    def shards(self) -> list[int]:
        sums = [0] * SHARDS
        for key, (d, _) in self.keys.items():
            s = shard_of(key)
            sums[s] = (sums[s] + d) % (1 << 64)
        return sums


@dataclass
class Parity:
    store: str
    compared: int = 0  # keys on either side
    equal_shards: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    expiring: int = 0

    def to_dict(self, limit: int = 100) -> dict[str, Any]:
        return {
            "store": self.store,
            "keys": self.compared,
            "shards": SHARDS,
            "equalShards": self.equal_shards,
            "differing": len(self.differences),
            "expiring": self.expiring,
            "differences": self.differences[:limit],
        }


def differing_keys(live: Side, shadow: Side, now_ms: int | None = None) -> tuple[list[str], int, int]:
    """(keys that differ, shards equal, keys on one side only that are expiring)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    a, b = live.shards(), shadow.shards()
    bad = {s for s in range(SHARDS) if a[s] != b[s]}
    out: list[str] = []
    expiring = 0
    for key in sorted({k for k in (*live.keys, *shadow.keys) if shard_of(k) in bad}):
        x, y = live.keys.get(key), shadow.keys.get(key)
        if x is not None and y is not None:
            if x[0] != y[0]:
                out.append(key)
            continue
        only = x or y
        assert only is not None
        if only[1] is not None and only[1] <= now + EXPIRY_MARGIN_MS:
            expiring += 1
            continue
        out.append(key)
    return out, SHARDS - len(bad), expiring


# --- Redis ----------------------------------------------------------------------------------------

# KEYS = keys; returns per key {type, value, pexpiretime}
_READ = """
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  local value
  if kind == 'hash' then value = redis.call('HGETALL', key)
  elseif kind == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  elseif kind == 'string' then value = {redis.call('GET', key)}
  else value = {} end
  out[#out + 1] = {kind, value, redis.call('PEXPIRETIME', key)}
end
return out
"""


def redis_values(client: Any, keys: list[str], prefix: str = "") -> Iterator[tuple[str, Any, int | None]]:
    """(logical key, canonical value, expiry ms or None) of each key that exists, read in chunks
    of CHUNK keys per script call."""
    script = client.register_script(_READ)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        for key, (kind, raw, expires) in zip(chunk, script(keys=[prefix + k for k in chunk]), strict=True):
            kind = kind.decode() if isinstance(kind, bytes) else kind
            if kind == "none":
                continue
            items = [x.decode() if isinstance(x, bytes) else x for x in raw]
            value: Any
            if kind == "hash":
                value = dict(sorted(zip(items[::2], items[1::2], strict=True)))
            elif kind == "zset":
                value = sorted(zip(items[::2], (float(s) for s in items[1::2]), strict=True))
            else:
                value = items
            exp = int(expires) if int(expires) > 0 and kind == "hash" else None
            yield key, {"type": kind, "value": value, "expiresAt": exp}, exp if int(expires) > 0 else None


# KEYS = keys; per key {sha1 of its canonical form, expiry ms (-1: none, -2: no key)}. The digest is
# made in Redis (one script call per CHUNK keys): a hash's fields sorted with their values and its
# expiry instant, a sorted set's members and scores, a string's value (without expiry)
_DIGEST = """
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  local parts = {kind}
  local expires = redis.call('PEXPIRETIME', key)
  if kind == 'hash' then
    local flat = redis.call('HGETALL', key)
    local pairs_ = {}
    for j = 1, #flat, 2 do pairs_[#pairs_ + 1] = flat[j] .. '\0' .. flat[j + 1] end
    table.sort(pairs_)
    parts[2] = table.concat(pairs_, '\1')
    parts[3] = tostring(expires)
  elseif kind == 'zset' then
    parts[2] = table.concat(redis.call('ZRANGE', key, 0, -1, 'WITHSCORES'), '\1')
  elseif kind == 'string' then
    parts[2] = redis.call('GET', key)
  end
  out[#out + 1] = {redis.sha1hex(table.concat(parts, '\2')), expires}
end
return out
"""


def redis_side(client: Any, keys: list[str], prefix: str = "") -> Side:
    """Each key's digest, computed in Redis (`_DIGEST`): the values never cross the wire."""
    side = Side()
    script = client.register_script(_DIGEST)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        for key, (sha, expires) in zip(chunk, script(keys=[prefix + k for k in chunk]), strict=True):
            if int(expires) == -2:
                continue  # gone (expired) since it was listed
            side.keys[key] = (int(sha[:16], 16), int(expires) if int(expires) > 0 else None)
    return side


# --- Cassandra ------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A driver value as JSON-able: timestamps as epoch ms, UDTs and tuples as lists, maps as dicts."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(aware.timestamp() * 1000)
    if isinstance(value, tuple | list | set | frozenset):
        return [plain(v) for v in value]
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if hasattr(value, "_fields"):
        return [plain(getattr(value, f)) for f in value._fields]
    return value


def cassandra_rows(
    session: Any, table: str, key_columns: list[tuple[str, str]]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(primary key as text, the row's columns) of every row, paged."""
    statement = session.prepare(f"SELECT * FROM {table}")  # noqa: S608 - a table name of ours
    statement.fetch_size = 5_000
    for row in session.execute(statement):
        values = {k: plain(v) for k, v in row._asdict().items()}
        key = _encode([values[c] for c, _ in key_columns]).decode()
        yield key, values


def cassandra_key_columns(cluster: Any, keyspace: str, table: str) -> list[tuple[str, str]]:
    """The table's primary key columns and their CQL types, in order."""
    cluster.refresh_table_metadata(keyspace, table)
    meta = cluster.metadata.keyspaces[keyspace].tables[table]
    return [(c.name, c.cql_type) for c in meta.primary_key]


def cassandra_side(session: Any, table: str, key_columns: list[tuple[str, str]]) -> Side:
    side = Side()
    for key, values in cassandra_rows(session, table, key_columns):
        side.add(key, values)
    return side


def cassandra_row(session: Any, table: str, key_columns: list[tuple[str, str]], key: str) -> dict[str, Any] | None:
    parts = msgspec.json.decode(key.encode())
    where = " AND ".join(f"{c} = %s" for c, _ in key_columns)
    params = [
        dt.datetime.fromtimestamp(v / 1000, dt.UTC) if kind == "timestamp" else v
        for (_, kind), v in zip(key_columns, parts, strict=True)
    ]
    row = session.execute(f"SELECT * FROM {table} WHERE {where}", params).one()  # noqa: S608
    return None if row is None else {k: plain(v) for k, v in row._asdict().items()}


# --- OpenSearch -----------------------------------------------------------------------------------


def opensearch_documents(http: Any, index: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, {"source", "version"}) of every document of `index`, by `search_after` on `_id`."""
    after: list[Any] | None = None
    http.post(f"/{index}/_refresh")
    while True:
        body: dict[str, Any] = {"size": 2_000, "sort": [{"_id": "asc"}], "version": True, "query": {"match_all": {}}}
        if after is not None:
            body["search_after"] = after
        answer = http.post(f"/{index}/_search", json=body)
        if answer.is_error:
            raise RuntimeError(f"OpenSearch: searching {index}: {answer.status_code} {answer.text[:200]}")
        hits = answer.json()["hits"]["hits"]
        if not hits:
            return
        for hit in hits:
            yield hit["_id"], {"source": hit["_source"], "version": hit.get("_version")}
        after = hits[-1]["sort"]


def opensearch_side(http: Any, index: str) -> Side:
    side = Side()
    for key, value in opensearch_documents(http, index):
        side.add(key, value)
    return side


def opensearch_document(http: Any, index: str, doc_id: str) -> dict[str, Any] | None:
    from urllib.parse import quote

    answer = http.get(f"/{index}/_doc/{quote(doc_id, safe='')}")
    if answer.status_code == 404:
        return None
    found = answer.json()
    return {"source": found["_source"], "version": found.get("_version")} if found.get("found") else None
