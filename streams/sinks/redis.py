"""The Redis sink: a batch's store writes in one Lua script call (a few thousand keys per call),
each a compare-and-set on its version, and the source positions they reflect in the same script
— atomic, and with AOF on (`appendfsync everysec`) lost only together.

Before writing, the script checks that the store still holds the positions this sink wrote last
for the batch's partitions, and every script call this sink made (a count per sink, in the hash
`<progress key>:writes`: an engine that records positions in a later call than the writes they
cover — Bytewax, at an epoch's end — would otherwise not see a Redis that kept the positions but
lost the writes after them). A Redis that came back older (it lost writes) fails that check and
`StoreRegressed` is raised: the engine stops, and on its restart resumes from the store's
positions, which re-writes what was lost (`streams.core.resume_from`)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from streams.core import Invalidate, Rank, Upsert, Write, coalesce

# KEYS[1] = the progress hash, KEYS[2] = the calls hash, KEYS[3..] = the keys written; ARGV[1] =
# {partition: offset the store must hold at least} (JSON), ARGV[2] = the writes (JSON list),
# ARGV[3] = {partition: next offset} to record ('' for none), ARGV[4] = this sink's token,
# ARGV[5] = how many calls it made before (the calls hash must hold that). A write is
# [kind, key index, version, ...]:
#   u: upsert [.., expire-at ms or 0, {field: value}]   i: invalidate [.., expire-at ms, [key indexes]]
#   z: rank [.., member, score, versions key index]     r: unrank [.., member, versions key index]
# A ranking's member changes only with a newer version than the last it had (kept in the hash
# `<ranking>:versions`), like every other write: batches and replays applied in any order end
# with the same scores.
_APPLY = """
local progress = KEYS[1]
for partition, offset in pairs(cjson.decode(ARGV[1])) do
  local held = tonumber(redis.call('HGET', progress, partition) or '-1')
  if held < offset then
    return redis.error_reply('REGRESSED ' .. partition .. ' holds ' .. held .. ', wrote ' .. offset)
  end
end
local calls = tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0')
if calls ~= tonumber(ARGV[5]) then
  return redis.error_reply('REGRESSED it holds ' .. calls .. ' of the ' .. ARGV[5] .. ' calls of this sink')
end
redis.call('HSET', KEYS[2], ARGV[4], string.format('%d', calls + 1))
local changed = 0
for _, w in ipairs(cjson.decode(ARGV[2])) do
  local kind, key, version = w[1], KEYS[w[2]], w[3]
  if kind == 'u' then
    local current = redis.call('HGET', key, 'version')
    if not current or tonumber(current) < version then
      local args = {'version', string.format('%d', version)}
      for field, value in pairs(w[5]) do
        args[#args + 1] = field
        args[#args + 1] = value
      end
      redis.call('HSET', key, unpack(args))
      if w[4] > 0 then redis.call('PEXPIREAT', key, string.format('%d', w[4])) end
      changed = changed + 1
    end
  elseif kind == 'i' then
    local floor = redis.call('GET', key)
    if not floor or tonumber(floor) < version then
      redis.call('SET', key, string.format('%d', version), 'PXAT', string.format('%d', w[4]))
      for _, index in ipairs(w[5]) do redis.call('DEL', KEYS[index]) end
      changed = changed + 1
    end
  else
    local versions = KEYS[w[#w]]
    local held = redis.call('HGET', versions, w[4])
    if not held or tonumber(held) < version then
      if kind == 'z' then
        redis.call('ZADD', key, string.format('%d', w[5]), w[4])
      else
        redis.call('ZREM', key, w[4])
      end
      redis.call('HSET', versions, w[4], string.format('%d', version))
      changed = changed + 1
    end
  end
end
if ARGV[3] ~= '' then
  for partition, offset in pairs(cjson.decode(ARGV[3])) do
    redis.call('HSET', progress, partition, string.format('%d', offset))
  end
end
return changed
"""
CHUNK = 2_000  # writes per script call: bounds how long one call holds Redis
RANK_VERSIONS = ":versions"  # a ranking's member → the version of its score


class StoreRegressed(RuntimeError):
    """The store holds older positions than this sink wrote: it lost writes (a restart from an
    older snapshot). The engine must resume from the store's positions."""


class RedisSink:
    def __init__(self, url: str, progress_key: str) -> None:
        # health checks: a connection a Redis restart closed is reopened (the positions check
        # then tells whether the restarted Redis lost anything)
        self.client = redis.Redis.from_url(url, socket_timeout=10, health_check_interval=5)
        self.progress_key = progress_key
        self.calls_key = f"{progress_key}:writes"  # sink token → its script calls Redis holds
        self.token = uuid.uuid4().hex
        self.calls = 0  # script calls that succeeded
        self.script = self.client.register_script(_APPLY)
        self.wrote: dict[str, int] = {}  # partition → the last position this sink recorded
        self.changed = 0

    def progress(self) -> dict[str, int]:
        held: dict[bytes, bytes] = self.client.hgetall(self.progress_key)  # type: ignore[assignment]
        return {k.decode(): int(v) for k, v in held.items()}

    def apply(self, writes: Sequence[Write], progress: Mapping[str, int]) -> int:
        keys = self._keys()

        def index(key: str) -> int:
            i = keys.get(key)
            if i is None:
                i = keys[key] = len(keys) + 1
            return i

        encoded: list[list[Any]] = []
        for w in coalesce(writes):
            if isinstance(w, Upsert):
                encoded.append(["u", index(w.key), w.version, w.expire_at_ms or 0, dict(w.fields)])
            elif isinstance(w, Invalidate):
                encoded.append(["i", index(w.key), w.version, w.expire_at_ms, [index(d) for d in w.drop]])
            elif isinstance(w, Rank):
                versions = index(w.key + RANK_VERSIONS)
                if w.score is None:
                    encoded.append(["r", index(w.key), w.version, w.member, versions])
                else:
                    encoded.append(["z", index(w.key), w.version, w.member, w.score, versions])
            if len(keys) >= CHUNK:
                self._call(keys, encoded, None)
                keys, encoded = self._keys(), []
        if encoded or progress:
            self._call(keys, encoded, progress)
        return self.changed

    def _keys(self) -> dict[str, int]:
        return {self.progress_key: 1, self.calls_key: 2}

    def _call(self, keys: dict[str, int], encoded: list[list[Any]], progress: Mapping[str, int] | None) -> None:
        expected = {p: self.wrote[p] for p in (progress or self.wrote) if p in self.wrote}
        recorded = "" if not progress else json.dumps(dict(progress))
        args = [json.dumps(expected), json.dumps(encoded), recorded, self.token, str(self.calls)]
        try:
            self.changed += int(self.script(keys=list(keys), args=args))
        except redis.ResponseError as exc:
            if "REGRESSED" in str(exc):
                raise StoreRegressed(f"Redis lost writes: {exc}") from None
            raise
        self.calls += 1
        if progress:
            self.wrote.update(progress)

    def forget(self, partitions: Sequence[str]) -> None:
        """Partitions this process no longer reads (a rebalance): another may write them."""
        for p in partitions:
            self.wrote.pop(p, None)

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):  # (a sink that crashed leaves its count)
            self.client.hdel(self.calls_key, self.token)
        self.client.close()
