"""The one dead-letter writer of every consumer (the dataflows, the OLAP loader, the IoT ingest).

A dead letter is the record exactly as it came (key, value, its own headers first), plus headers
that say why and where from:

    dlq.reason     why no consumer step could take it (an exception's type and message, ≤ 1000 bytes)
    dlq.detail     more about it, when the consumer has more (≤ 1000 bytes)
    dlq.dataflow   which consumer refused it (a dataflow's name, `olap_loader`, `iot_ingest`)
    dlq.topic, dlq.partition, dlq.offset
                   where it was read, for a Kafka record
    ...            anything else the source names (the ingest adds `mqtt.topic`)

`DeadLetterWriter.write` returns once Kafka has acknowledged every letter and raises
`DeadLetterFailed` otherwise, so a consumer moves its offsets past a bad record only after its
dead letter is safe. An engine that commits its outputs in a Kafka transaction (Quix) produces the
same record (`DeadLetter.kafka_headers`) through its transactional producer instead, so the dead
letter commits with the offsets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger("shopstream.dead_letters")
MAX_TEXT = 1000  # bytes of reason and detail kept in a header


class DeadLetterFailed(RuntimeError):
    """Kafka did not acknowledge a dead letter: the consumer must keep the record and retry."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record no consumer step could take: its bytes as they came, and why."""

    source: str  # the consumer: a dataflow's name, olap_loader, iot_ingest
    reason: str
    value: bytes | None
    key: bytes | None = None
    origin: tuple[str, int, int] | None = None  # (topic, partition, offset) of a Kafka record
    detail: str = ""
    headers: Sequence[tuple[str, bytes]] = ()  # the record's own headers, kept in front
    extra: Mapping[str, str] = field(default_factory=dict)  # e.g. {"mqtt.topic": "shop/…"}

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        out = [*self.headers, ("dlq.reason", self.reason.encode()[:MAX_TEXT])]
        if self.detail:
            out.append(("dlq.detail", self.detail.encode()[:MAX_TEXT]))
        out.append(("dlq.dataflow", self.source.encode()))
        if self.origin is not None:
            topic, partition, offset = self.origin
            out += [("dlq.topic", topic.encode()), ("dlq.partition", b"%d" % partition), ("dlq.offset", b"%d" % offset)]
        out += [(name, value.encode()) for name, value in self.extra.items()]
        return out

    def log(self) -> None:
        where = "{}[{}]@{}".format(*self.origin) if self.origin is not None else ", ".join(self.extra.values())
        log.warning(
            "dead letter from %s: %s: %s%s",
            self.source,
            where,
            self.reason,
            f" ({self.detail})" if self.detail else "",
            extra={"dataflow": self.source},
        )


class DeadLetterWriter:
    """Writes a consumer's dead letters to its topic (an idempotent producer of its own)."""

    def __init__(self, bootstrap: str, topic: str, *, client_id: str, partitions: int = 1) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.written = 0
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5, "client.id": client_id}
        )

    def ensure_topic(self, timeout: float = 30) -> None:
        """Make the topic when it does not exist (a consumer's first start)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        if self.topic in admin.list_topics(timeout=timeout).topics:
            return
        futures = admin.create_topics([NewTopic(self.topic, num_partitions=self.partitions, replication_factor=1)])
        try:
            futures[self.topic].result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def write(self, letters: Sequence[DeadLetter], timeout: float = 30) -> None:
        """Returns once Kafka has every letter; raises DeadLetterFailed otherwise."""
        if not letters:
            return
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        try:
            for letter in letters:
                self._produce(letter, delivered)
            left = self._producer.flush(timeout)
        except KafkaException as exc:
            raise DeadLetterFailed(f"dead letters to {self.topic}: {exc}") from exc
        if left or failures:
            raise DeadLetterFailed(f"dead letters to {self.topic}: {failures or f'{left} not acknowledged'}")
        for letter in letters:
            letter.log()
        self.written += len(letters)

    async def send(self, letter: DeadLetter, timeout: float = 30) -> None:
        """`write` for asyncio callers: the wait for Kafka runs off the event loop."""
        await asyncio.to_thread(self.write, [letter], timeout)

    def close(self, timeout: float = 10) -> None:
        self._producer.flush(timeout)

    def _produce(self, letter: DeadLetter, delivered: Any) -> None:
        while True:
            try:
                self._producer.produce(
                    self.topic, letter.value, letter.key, headers=letter.kafka_headers(), on_delivery=delivered
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self._producer.poll(0.1)
