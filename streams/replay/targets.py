"""Shadow targets: where a replay writes a projection beside the live one, and how the shadow
becomes the live one (`promote`) or goes (`drop`).

Per store, generation N of a projection (the live one is the generation the store names; 0 until a
first promotion):

- **Redis**: the projection's keys under the namespace `replay:<group>:r<N>:` (`inventory:P1` is
  `replay:shopstream-inventory_snapshot:r1:inventory:P1`). Promotion happens with the live
  dataflow paused and the shadow at its offset vector, where the two differ only in the keys a
  repair changes: the live keys (those matching `Projection.redis_keys`) are copied into the
  namespace of the generation they were (kept until `drop`), then one Lua script — atomic, and
  short: readers see the old value or the new one of each key, never wait long — copies the
  differing keys from the shadow into the live names (or deletes them), and the shadow's
  namespace goes.
- **Cassandra**: a table `<table>_r<N>` made like the live one (its CQL, renamed). Readers and the
  live sink name a table by its logical name and follow the pointer in `read_models` (logical →
  physical); promotion is one write of that row. The old table stays until `drop`.
- **OpenSearch**: an index `<index>_r<N>` made with the live index's settings and mappings;
  promotion moves the alias in one `_aliases` request. The old index stays until `drop`.

The shadow's source positions are recorded under the group `<group>@r<N>` (Redis
`streams:progress:<group>@r<N>`, Cassandra's `projection_progress`, OpenSearch's
`projection_progress`), so `status` reads its progress from the stores like a live dataflow's."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from streams.core import Document, Invalidate, Rank, Row, Upsert, Write
from streams.sinks.cassandra_pointers import READ_MODELS

NAMESPACE = "replay:{group}:r{generation}:"
GENERATIONS = "replay:generations"  # Redis hash: group → the live generation of its Redis keys
_SUFFIX = re.compile(r"_r\d+$")


def shadow_group(group: str, generation: int) -> str:
    return f"{group}@r{generation}"


def physical_name(logical: str, generation: int) -> str:
    """A table's or an index's name in generation N (its generation-0 name without a suffix)."""
    return f"{_SUFFIX.sub('', logical)}_r{generation}" if generation else _SUFFIX.sub("", logical)


@dataclass(frozen=True)
class Shadow:
    """Where generation `generation` of a projection lives, per store."""

    group: str  # the live dataflow's group
    generation: int
    redis_prefix: str
    tables: Mapping[str, str] = field(default_factory=dict)  # Cassandra: logical → physical
    indices: Mapping[str, str] = field(default_factory=dict)  # OpenSearch: alias → index

    @classmethod
    def make(cls, group: str, generation: int, tables: Mapping[str, str], indices: Mapping[str, str]) -> Shadow:
        return cls(group, generation, NAMESPACE.format(group=group, generation=generation), tables, indices)

    @property
    def progress_group(self) -> str:
        return shadow_group(self.group, self.generation)

    def retarget(self, writes: Iterable[Write]) -> list[Write]:
        """The writes as the shadow's: Redis keys in its namespace, rows in its tables, documents in
        its index. Replays write nothing else (`streams.replay.runner` drops side effects first)."""
        out: list[Write] = []
        p = self.redis_prefix
        replace = msgspec.structs.replace
        for w in writes:
            kind = type(w)
            if kind is Upsert:
                assert isinstance(w, Upsert)
                out.append(replace(w, key=p + w.key))
            elif kind is Rank:
                assert isinstance(w, Rank)
                out.append(replace(w, key=p + w.key))
            elif kind is Invalidate:
                assert isinstance(w, Invalidate)
                out.append(replace(w, key=p + w.key, drop=tuple(p + d for d in w.drop)))
            elif kind is Row:
                assert isinstance(w, Row)
                out.append(replace(w, table=self.tables.get(w.table, w.table)))
            elif kind is Document:
                assert isinstance(w, Document)
                out.append(replace(w, index=self.indices.get(w.index, w.index)))
            else:
                raise TypeError(f"a replay does not write {kind.__name__} (a side effect)")
        return out


# --- Redis ----------------------------------------------------------------------------------------


def redis_generation(client: Any, group: str) -> int:
    held = client.hget(GENERATIONS, group)
    return int(held) if held is not None else 0


def scan(client: Any, patterns: Sequence[str], prefix: str = "") -> list[str]:
    """The keys matching any of `patterns` (under `prefix`), each once."""
    found: set[str] = set()
    for pattern in patterns:
        for key in client.scan_iter(match=_glob_escape(prefix) + pattern, count=5_000):
            found.add(key.decode() if isinstance(key, bytes) else key)
    if not prefix:  # the live names: never a namespace's keys (replay:… matches no pattern anyway)
        found = {k for k in found if not k.startswith("replay:")}
    return sorted(found)


def _glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?\\])", r"\\\1", text)


def promote_redis(client: Any, shadow: Shadow, patterns: Sequence[str], differing: Sequence[str]) -> dict[str, int]:
    """Make the shadow's values the live ones, with the live dataflow paused and the shadow at
    the same offset vector: the two hold the same values but for `differing` (a repair, or
    nothing), so only those change, in one script (atomic; a few keys, not the whole projection,
    so Redis is never held long). Before it, every live key is copied into the namespace of the
    generation it was (kept until `drop`); after it, the shadow's namespace goes (its values are
    the live ones now)."""
    live_generation = redis_generation(client, shadow.group)
    if live_generation == shadow.generation:
        raise ValueError(f"generation {shadow.generation} is live already")
    retired = NAMESPACE.format(group=shadow.group, generation=live_generation)
    leftover = scan(client, patterns, retired)  # a generation's keys are never mixed
    _in_chunks(client, "UNLINK", leftover)
    live = scan(client, patterns)
    for start in range(0, len(live), 1_000):  # server-side copies, a pipeline at a time
        with client.pipeline(transaction=False) as pipe:
            for key in live[start : start + 1_000]:
                pipe.copy(key, retired + key, replace=True)
            pipe.execute()
    script = client.register_script(_PROMOTE)
    changed = script(keys=[*differing, GENERATIONS], args=[shadow.redis_prefix, shadow.group, shadow.generation])
    drop_namespace(client, shadow, patterns)
    return {"retired": len(live), "changed": int(changed)}


def drop_namespace(client: Any, shadow: Shadow, patterns: Sequence[str]) -> None:
    """Delete the shadow's namespace once its values are the live ones."""
    _in_chunks(client, "UNLINK", scan(client, patterns, shadow.redis_prefix))


# KEYS = the keys that differ, then the generations hash; ARGV[1] = the shadow's namespace,
# ARGV[2] = the group (the generations field), ARGV[3] = the new live generation
_PROMOTE = """
local n = #KEYS - 1
for i = 1, n do
  local key = KEYS[i]
  if redis.call('EXISTS', ARGV[1] .. key) == 1 then
    redis.call('COPY', ARGV[1] .. key, key, 'REPLACE')
  else
    redis.call('DEL', key)
  end
end
redis.call('HSET', KEYS[#KEYS], ARGV[2], ARGV[3])
return n
"""


def _in_chunks(client: Any, command: str, keys: Sequence[str], size: int = 1_000) -> None:
    for start in range(0, len(keys), size):
        client.execute_command(command, *keys[start : start + size])


def drop_redis(client: Any, group: str, generation: int, patterns: Sequence[str]) -> int:
    """Delete generation `generation`'s namespace (never the live keys)."""
    if generation == redis_generation(client, group):
        raise ValueError(f"generation {generation} is live: promote another one first")
    prefix = NAMESPACE.format(group=group, generation=generation)
    keys = scan(client, patterns, prefix)
    keys += [k.decode() for k in client.scan_iter(match=_glob_escape(f"streams:progress:{group}@r{generation}") + "*")]
    _in_chunks(client, "UNLINK", keys)
    return len(keys)


# --- Cassandra ------------------------------------------------------------------------------------


def create_cassandra_table(cluster: Any, session: Any, keyspace: str, live: str, shadow: str) -> bool:
    """Make table `shadow` like table `live` (its CQL from the driver's schema metadata, renamed);
    False when it exists already."""
    cluster.refresh_table_metadata(keyspace, live)
    tables = cluster.metadata.keyspaces[keyspace].tables
    if shadow in tables:
        return False
    if live not in tables:
        raise ValueError(f"Cassandra has no table {keyspace}.{live}")
    cql = tables[live].as_cql_query()
    head = f"CREATE TABLE {keyspace}.{live} ("
    if not cql.startswith(head):
        raise ValueError(f"unexpected CQL for {keyspace}.{live}: {cql[:80]}")
    session.execute(f"CREATE TABLE IF NOT EXISTS {keyspace}.{shadow} (" + cql[len(head) :], timeout=60)
    return True


def point_cassandra(session: Any, logical: str, physical: str, generation: int) -> None:
    session.execute(
        f"INSERT INTO {READ_MODELS} (name, physical, generation, promoted_at) VALUES (%s, %s, %s, toTimestamp(now()))",
        (logical, physical, generation),
    )


# --- OpenSearch -----------------------------------------------------------------------------------

_NOT_COPIED = {"uuid", "version", "creation_date", "provided_name", "replication"}


def alias_indices(http: Any, alias: str) -> list[str]:
    answer = http.get(f"/_alias/{alias}")
    return sorted(answer.json()) if answer.status_code == 200 else []


def create_shadow_index(http: Any, alias: str, shadow: str) -> bool:
    """Make index `shadow` with the settings and mappings of the index behind `alias`; False when
    it exists already."""
    if http.head(f"/{shadow}").status_code == 200:
        return False
    live = alias_indices(http, alias)
    if len(live) != 1:
        raise ValueError(f"the alias {alias} points at {live or 'no index'}, not one index")
    described = http.get(f"/{live[0]}").json()[live[0]]
    settings = {k: v for k, v in described["settings"]["index"].items() if k not in _NOT_COPIED}
    answer = http.put(f"/{shadow}", json={"settings": {"index": settings}, "mappings": described["mappings"]})
    if answer.is_error:
        raise ValueError(f"OpenSearch refused the index {shadow}: {answer.status_code} {answer.text[:300]}")
    return True


def promote_index(http: Any, alias: str, shadow: str) -> list[str]:
    """Move `alias` onto `shadow` in one request; the indices it left."""
    previous = alias_indices(http, alias)
    actions: list[dict[str, Any]] = [{"remove": {"index": old, "alias": alias}} for old in previous if old != shadow]
    actions.append({"add": {"index": shadow, "alias": alias}})
    answer = http.post("/_aliases", json={"actions": actions})
    if answer.is_error:
        raise ValueError(f"OpenSearch refused moving {alias}: {answer.status_code} {answer.text[:300]}")
    return [old for old in previous if old != shadow]
