"""What every Quix Streams dataflow here shares: the application (exactly-once, a short commit
interval), Avro decoding in front with a dead-letter topic for what cannot be read, Avro
encoding of projection records, and the Redis projection sink (versioned compare-and-set).

A dataflow module only writes its pure steps and wires them with these."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from quixstreams import Application, State
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import HeadersTuples, Topic
from quixstreams.models.serializers import SerializationContext, Serializer
from quixstreams.sinks import BatchingSink, SinkBatch

from shopstream.domain import EventType
from shopstream.serde import AvroSerde, RegistryClient, SerdeError
from streams.settings import DataflowSettings

log = logging.getLogger("shopstream.streams")
# derived records get ids that replays reproduce: uuid5 of (topic, key, version)
RECORD_IDS = uuid.UUID("6f1c3a52-94f4-4b8e-9a55-2f0f5c1d7e11")

# a dataflow step's per-key state
KeyState = State[str, Any]

__all__ = ["Dataflow", "Inbound", "Invalidation", "KeyState", "Projected", "Ranking", "RedisWrite"]


@dataclass(frozen=True)
class Inbound:
    """A decoded, parsed input record: the dataflow's value plus the ids to carry along."""

    value: Any
    trace_id: str
    correlation_id: str


@dataclass(frozen=True)
class RedisWrite:
    """One projection write: HSET `fields` on `key` unless it already holds `version` or newer."""

    key: str
    version: int
    fields: dict[str, str]
    expire_at_ms: int | None = None


@dataclass(frozen=True)
class Invalidation:
    """Drop cache entries written by readers (read-through caches) because a newer `version`
    of their entity exists, and leave that version as the entries' floor at `key` for `ttl_ms`,
    so that a reader holding an older copy cannot put it back."""

    key: str  # the floor
    version: int
    drop: tuple[str, ...]
    ttl_ms: int


@dataclass(frozen=True)
class Ranking:
    """A member's score in a sorted set (ZADD, the absolute score: repeating it is harmless), or
    its removal when `score` is None."""

    key: str
    member: str
    score: int | None
    version: int

    @property
    def slot(self) -> str:
        return f"{self.key} {self.member}"


RedisOp = RedisWrite | Invalidation | Ranking


@dataclass(frozen=True)
class Projected:
    """What a dataflow step emits: the projection topic's record (an envelope dict, or None for
    a dataflow without a topic) and the Redis write. One value for both outputs, so the
    dataflow stays one linear chain (Quix copies values into every branch)."""

    record: dict[str, Any] | None
    redis: RedisWrite | Invalidation
    extra: tuple[RedisOp, ...] = ()  # more Redis writes caused by the same record


class Dataflow:
    """One running dataflow: its Quix application, serde, dead-letter topic and Redis sink."""

    def __init__(self, name: str, settings: DataflowSettings) -> None:
        self.name = name
        self.settings = settings
        self.registry = RegistryClient(settings.registry_url)
        self.serde = AvroSerde(self.registry)
        self.app = Application(
            broker_address=settings.kafka_bootstrap,
            consumer_group=settings.consumer_group or f"shopstream-{name}",
            processing_guarantee="exactly-once" if settings.exactly_once else "at-least-once",
            commit_interval=settings.commit_interval,
            consumer_poll_timeout=settings.poll_timeout,
            auto_offset_reset=settings.auto_offset_reset,
            state_dir=str(settings.state_dir),
            use_changelog_topics=settings.changelog_topics,
            # a record our decoder cannot read goes to the dead-letter topic, not here; an
            # exception reaching Quix is a bug or an outage: the process stops and is restarted
            loglevel=settings.log_level,
        )
        self.dlq = self.app.topic(settings.dead_letter_topic or f"shopstream.dlq.{name}", value_serializer="bytes")
        self.dead_letters = 0

    # --- input -----------------------------------------------------------------------------
    def source(self, event: EventType, parse: Callable[[dict[str, Any]], Any]) -> StreamingDataFrame:
        """The records of one event topic as `Inbound` values; records that do not decode, are
        not the topic's event type or fail `parse` go to the dead-letter topic with the reason."""
        # keys as bytes: a key that is not UTF-8 must reach the dead-letter topic, not crash Quix
        topic = self.app.topic(
            self.settings.topic_prefix + event.topic, value_deserializer="bytes", key_deserializer="bytes"
        )
        sdf = self.app.dataframe(topic)
        producer = sdf.processing_context.producer
        dlq_name = self.dlq.name

        def decode(raw: bytes | None, key: Any, timestamp: int, headers: Any) -> Inbound | None:
            try:
                _, record = self.serde.decode(raw)
                if record["eventType"] != event.name:
                    raise ValueError(f"a {record['eventType']} record on {topic.name}")
                if key != record["partitionKey"].encode():
                    # per-key state would file it under the wrong entity
                    raise ValueError(f"record key {key!r} is not the event's partition key {record['partitionKey']!r}")
                return Inbound(parse(record), record["traceId"], record["correlationId"])
            except (SerdeError, ValueError, KeyError, TypeError) as exc:
                self._dead_letter(producer, dlq_name, topic.name, raw, key, headers, exc)
                return None

        return sdf.apply(decode, metadata=True).filter(lambda v: v is not None)

    def _dead_letter(
        self, producer: Any, dlq: str, topic: str, raw: bytes | None, key: Any, headers: Any, exc: Exception
    ) -> None:
        """Write the record as it came, with why and from where, in the same transaction."""
        from quixstreams import message_context

        ctx = message_context()
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        extra: HeadersTuples = [
            ("dlq.reason", reason.encode()),
            ("dlq.dataflow", self.name.encode()),
            ("dlq.topic", topic.encode()),
            ("dlq.partition", str(ctx.partition).encode()),
            ("dlq.offset", str(ctx.offset).encode()),
        ]
        producer.produce(
            topic=dlq,
            value=raw,
            key=key,
            headers=[*(headers or []), *extra],
        )
        self.dead_letters += 1
        log.warning(
            "dead letter: %s[%s]@%s: %s",
            topic,
            ctx.partition,
            ctx.offset,
            reason,
            extra={"dataflow": self.name, "topic": topic, "offset": ctx.offset},
        )

    # --- output ----------------------------------------------------------------------------
    def projection_topic(self, event: EventType) -> Topic:
        """A registered projection topic written with our serde (schema id from the registry)."""
        self.serde.use(event.subject)
        return self.app.topic(
            self.settings.topic_prefix + event.topic,
            key_serializer="bytes",
            value_serializer=_EnvelopeSerializer(self.serde, event.subject),
        )

    def redis_sink(self) -> RedisProjectionSink:
        return RedisProjectionSink(self.settings.redis_url)

    def built(self) -> None:
        """After the dataflow's builder: settle what Quix decided on its own."""
        if not self.settings.time_alignment:
            self.app._dataframe_registry._requires_time_alignment = False  # no public switch in 3.28

    def run(self) -> None:
        try:
            self.app.run()
        finally:
            self.close()

    def close(self) -> None:
        self.registry.close()


def derived_record(
    event: EventType, payload: dict[str, Any], version: int, occurred_at: int, cause: Inbound, producer: str
) -> dict[str, Any]:
    """A projection record in the canonical envelope; its id is the same on every replay."""
    key = payload[event.partition_key]
    return {
        "eventId": str(uuid.uuid5(RECORD_IDS, f"{event.topic}:{key}:{version}")),
        "eventType": event.name,
        "occurredAt": occurred_at,
        "producer": producer,
        "traceId": cause.trace_id,
        "correlationId": cause.correlation_id,
        "schemaVersion": event.schema_version,
        "partitionKey": key,
        "payload": payload,
    }


def record_key(projected: Projected) -> bytes:
    """A projection record's Kafka key: its partition key."""
    assert projected.record is not None
    return str(projected.record["partitionKey"]).encode()


class _EnvelopeSerializer(Serializer):
    def __init__(self, serde: AvroSerde, subject: str) -> None:
        self.serde, self.subject = serde, subject

    def __call__(self, value: Projected, ctx: SerializationContext) -> bytes:
        return self.serde.encode(self.subject, value.record)  # type: ignore[arg-type]


# KEYS[1] = the hash; ARGV = version, expire-at ms ("" for none), the fields as one JSON object
# (one argument to pack instead of two per field: the client's packing was a third of the sink)
_CAS = """
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
local args = {'version', ARGV[1]}
for field, value in pairs(cjson.decode(ARGV[3])) do
  args[#args + 1] = field
  args[#args + 1] = value
end
redis.call('HSET', KEYS[1], unpack(args))
if ARGV[2] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return 1
"""
# KEYS[1] = the floor, KEYS[2..] = entries to drop; ARGV = version, floor TTL ms
_INVALIDATE = """
local floor = redis.call('GET', KEYS[1])
if floor and tonumber(floor) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""


class RedisProjectionSink(BatchingSink):
    """Writes the `Projected.redis` writes at each checkpoint, before Kafka offsets commit. A replayed batch
    writes versions Redis already holds, which the compare-and-set skips: never a double count."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.client: redis.Redis | None = None
        self.written = 0

    def setup(self) -> None:
        # health checks: a connection a Redis restart closed is reopened, not a crash
        self.client = redis.Redis.from_url(self.url, socket_timeout=5, health_check_interval=5)
        self.client.ping()
        self.cas = self.client.register_script(_CAS)
        self.invalidate = self.client.register_script(_INVALIDATE)

    def write(self, batch: SinkBatch) -> None:
        assert self.client is not None, "setup() first"
        latest: dict[str, RedisOp] = {}  # only the newest write per key (or set member) matters
        for item in batch:
            for w in (item.value.redis, *item.value.extra):
                slot = w.slot if isinstance(w, Ranking) else w.key
                if slot not in latest or latest[slot].version <= w.version:
                    latest[slot] = w
        pipe = self.client.pipeline(transaction=False)
        for w in latest.values():
            if isinstance(w, Invalidation):
                self.invalidate(keys=[w.key, *w.drop], args=[w.version, w.ttl_ms], client=pipe)
                continue
            if isinstance(w, Ranking):
                if w.score is None:
                    pipe.zrem(w.key, w.member)
                else:
                    pipe.zadd(w.key, {w.member: w.score})
                continue
            expire = "" if w.expire_at_ms is None else w.expire_at_ms
            self.cas(keys=[w.key], args=[w.version, expire, as_json(w.fields)], client=pipe)
        results = [r for r in pipe.execute() if isinstance(r, int)]
        self.written += sum(results)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def as_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
