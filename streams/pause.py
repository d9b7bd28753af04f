"""Pausing a running dataflow from outside, cooperatively (a replay's verify and promote,
`streams.replay`): the pauser sets `streams:pause:<group>` in the dataflow's Redis to a request
id, on a short lease (`PauseLease`: a TTL its holder renews, so a pauser killed with kill -9
leaves the dataflow paused for LEASE_S at most); the engine stops
reading its inputs, finishes what it read (its stores then reflect every record it read, and a
multi-stage projection's later stages have taken everything the first one forwarded), and answers
in `streams:paused:<group>` with the request id and the next offset of each input partition: the
offset vector its stores reflect exactly, which stays put until the pause key goes. Readers of
the stores are not paused; the records the dataflow would have read wait in the log.

Both engines do it (`streams.engines.bytewax`, `streams.engines.quix`), wherever they run (the
local stack, compose, a cluster): it needs only the Redis every dataflow writes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import redis

PAUSE = "streams:pause:{group}"
PAUSED = "streams:paused:{group}"
CHECK_EVERY_S = 0.2  # how often an engine looks at the pause key
LEASE_S = 30  # a pause request's TTL; its holder renews it every third of that


class PauseFlag:
    """The engine's side: whether a pause is asked for (read at most every CHECK_EVERY_S), and the
    answer once everything read is in the stores."""

    def __init__(self, url: str, group: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5, health_check_interval=5)
        self.key, self.answer = PAUSE.format(group=group), PAUSED.format(group=group)
        self.checked = 0.0
        self.current: str | None = None
        self.acknowledged: str | None = None

    def requested(self) -> str | None:
        now = time.monotonic()
        if now - self.checked >= CHECK_EVERY_S:
            self.checked = now
            try:
                held = self.client.get(self.key)
            except redis.RedisError:
                held = None  # Redis away: the sinks will say so; not a reason to stop reading
            self.current = held.decode() if isinstance(held, bytes) else held
            if self.current is None:
                self.acknowledged = None
        return self.current

    def acknowledge(self, request: str, positions: Mapping[str, int], ticks: bool) -> None:
        """`ticks`: whether the engine acts on a bare watermark (windows turn final with no record
        of theirs: Bytewax's timers) or only when a record comes (Quix)."""
        if self.acknowledged == request:
            return
        at = int(time.time() * 1000)
        answer = json.dumps({"id": request, "positions": dict(positions), "ticks": ticks, "at": at})
        self.client.set(self.answer, answer, ex=3_600)
        self.acknowledged = request

    def close(self) -> None:
        self.client.close()


# --- the pauser's side ----------------------------------------------------------------------------


class NotPaused(RuntimeError):
    """The dataflow did not answer the pause in time (not running, or stuck)."""


def request_pause(client: Any, group: str, ttl_s: int = LEASE_S) -> str:
    """Set the pause request for `ttl_s` (renew it with a `PauseLease` to hold it longer)."""
    request = uuid.uuid4().hex
    client.set(PAUSE.format(group=group), request, ex=ttl_s)
    return request


# renews the request's TTL only while the key still holds this request (not after a release, nor
# over another pauser's request)
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"


class PauseLease:
    """Holds a pause request while its holder runs: a thread renews the key's TTL every third of
    `ttl_s`. A holder that stops (`close`, or killed: the thread dies with it) lets the key
    expire, and the dataflow reads on."""

    def __init__(self, url: str, group: str, request: str, ttl_s: int = LEASE_S) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.key, self.request, self.ttl_s = PAUSE.format(group=group), request, ttl_s
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._renew, name=f"pause-lease-{group}", daemon=True)
        self.thread.start()

    def _renew(self) -> None:
        while not self.stopped.wait(self.ttl_s / 3):
            try:
                if not self.client.eval(_RENEW, 1, self.key, self.request, self.ttl_s):
                    return  # released, or taken over: nothing left to hold
            except redis.RedisError:
                continue  # Redis away for a moment: the TTL left covers the next try

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.client.close()


class Paused(NamedTuple):
    positions: dict[str, int]  # the offset vector the paused dataflow's stores reflect
    ticks: bool  # whether its engine acts on a bare watermark (`PauseFlag.acknowledge`)


def wait_paused(client: Any, group: str, request: str, timeout_s: float) -> Paused:
    deadline = time.monotonic() + timeout_s
    while True:
        held = client.get(PAUSED.format(group=group))
        if held is not None:
            answer = json.loads(held)
            if answer.get("id") == request:
                return Paused({p: int(o) for p, o in answer["positions"].items()}, bool(answer["ticks"]))
        if time.monotonic() > deadline:
            raise NotPaused(
                f"the dataflow of group {group} did not pause within {timeout_s:.0f} s: is it running?"
                " (a dataflow that is stopped: --live-stopped)"
            )
        time.sleep(0.1)


def release(client: Any, group: str) -> None:
    client.delete(PAUSE.format(group=group), PAUSED.format(group=group))
