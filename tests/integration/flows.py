"""Dataflow copies of a test's own, on real Kafka and Redis: a projection run by an engine as a
`shopstream streams run NAME --engine E` process, on topics with a prefix of the test's own
(synthetic events must not reach the platform's topics, which the OLAP layer reconciles against
Postgres), with its own group, state, dead-letter topic and Redis database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Producer

from dev.stack.stack import Stack
from shopstream.domain import EventType, envelope
from shopstream.serde import AvroSerde

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")
ENGINES = ("quix", "bytewax")


class NotDelivered(RuntimeError):
    """A test's event the broker did not take: the dataflows would read another log than the test
    expects (seen: the first records of a partition of topics made a moment before)."""


def _delivered(err: Any, msg: Any) -> None:
    if err is not None:  # raised from the producer's poll or flush
        raise NotDelivered(f"{msg.topic()}[{msg.partition()}]: {err}")


def produce(
    producer: Producer,
    serde: AvroSerde,
    event: EventType,
    payload: dict[str, Any],
    at_ms: int,
    prefix: str = "",
    partition: int | None = None,
) -> None:
    record = envelope(
        event,
        payload,
        producer="test",
        correlation_id="test-dataflows",
        trace_id=uuid.uuid4().hex,
        occurred_at=datetime.fromtimestamp(at_ms / 1000, UTC),
    )
    extra = {} if partition is None else {"partition": partition}
    # the record's timestamp is its event time, as Debezium's would be (the commit time), never
    # later than now: the broker refuses a record more than an hour ahead (INVALID_RECORD)
    producer.produce(
        prefix + event.topic,
        key=record["partitionKey"],
        value=serde.encode(event.subject, record),
        timestamp=min(at_ms, int(time.time() * 1000)),
        on_delivery=_delivered,
        **extra,
    )


class FlowProcess:
    """One dataflow process of the test's own, writing to Redis db `db` (of `redis_url`'s server)."""

    def __init__(
        self,
        stack: Stack,
        tmp: Path,
        name: str,
        engine: str,
        prefix: str,
        db: int,
        redis_port: int | None = None,
        **settings: str,
    ) -> None:
        run_id = uuid.uuid4().hex[:8]
        self.name, self.engine, self.prefix = name, engine, prefix
        self.group = f"t-{engine}-{run_id}"
        env_prefix = f"SHOPSTREAM_{name.upper()}__"
        port = redis_port or stack.settings.redis.port
        self.env = {
            **os.environ,
            env_prefix + "CONSUMER_GROUP": self.group,
            env_prefix + "TOPIC_PREFIX": prefix,
            env_prefix + "STATE_DIR": str(tmp / f"state-{self.group}"),
            env_prefix + "DEAD_LETTER_TOPIC": f"{prefix}dlq.{name}.{run_id}",
            env_prefix + "REDIS__URL": f"redis://{stack.settings.redis.host}:{port}/{db}",
            **{env_prefix + k.upper(): v for k, v in settings.items()},
        }
        self.dead_letter_topic = self.env[env_prefix + "DEAD_LETTER_TOPIC"]
        self.cache = redis.Redis(host=stack.settings.redis.host, port=port, db=db, decode_responses=True)
        self.log = tmp / f"flow-{self.group}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts: list[str] = []

    def start(self) -> None:
        with self.log.open("a") as log:
            argv = [SHOPSTREAM, "streams", "run", self.name, "--engine", self.engine]
            self.process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def supervise(self) -> None:
        """What supervisord does for the stack's dataflows: start the process again when it has
        ended by itself (a transaction or a store lost under load ends it: by design, it stops and
        is restarted); each restart is kept with the log that ended it, for the failure message."""
        if self.process is not None and self.process.poll() is not None:
            self.restarts.append(f"exited {self.process.returncode}: {self.log.read_text()[-1500:]}")
            self.start()

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def values(self, pattern: str) -> dict[str, dict[str, str]]:
        """Every hash (or string) matching `pattern` in the flow's Redis db."""
        found: dict[str, dict[str, str]] = {}
        for key in self.cache.scan_iter(pattern, count=1000):
            kind = self.cache.type(key)
            if kind == "hash":
                found[key] = self.cache.hgetall(key)
            elif kind == "string":
                found[key] = {"": self.cache.get(key) or ""}
            elif kind == "zset":
                found[key] = {m: str(s) for m, s in self.cache.zrange(key, 0, -1, withscores=True)}
        return found

    def tail(self) -> str:
        """Whether the process runs (or how it ended), then the end of its log."""
        code = None if self.process is None else self.process.poll()
        state = "not started" if self.process is None else "running" if code is None else f"exited {code}"
        restarted = f", restarted {len(self.restarts)}x, first after: {self.restarts[0]}" if self.restarts else ""
        return f"[{self.group}: {state}{restarted}]\n" + (self.log.read_text()[-3000:] if self.log.exists() else "")
