"""The store sinks one dataflow writes, applied together: Redis always, Cassandra when the
projection writes rows and OpenSearch when it writes search documents (`Projection.stores`), each
if the dataflow's settings keep that store on.

Each sink records the positions its own writes reflect. Where the dataflow resumes is the oldest
of them (`progress`): a store that lost writes — or a store added to a running projection, which
holds no positions yet — makes the engine read the log again from where that store stands, and
the version checks of the others make the replay harmless to them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from streams.core import Projection, Write
from streams.settings import DataflowSettings
from streams.sinks.redis import RedisSink


class StoreSink(Protocol):
    def apply(self, writes: Sequence[Write], progress: Mapping[str, int]) -> int: ...

    def progress(self) -> dict[str, int]: ...

    def forget(self, partitions: Sequence[str]) -> None: ...

    def close(self) -> None: ...


class Stores:
    def __init__(self, projection: Projection, settings: DataflowSettings) -> None:
        self.redis = RedisSink(settings.redis.url, settings.progress_key(projection.name))
        self.sinks: list[StoreSink] = [self.redis]
        self.names = ["redis"]
        wanted = set(projection.stores) & set(settings.stores)
        if "cassandra" in wanted:
            from streams.sinks.cassandra import CassandraSink  # the driver only where a projection uses it

            self.sinks.append(CassandraSink(settings.cassandra, settings.group(projection.name)))
            self.names.append("cassandra")
        if "opensearch" in wanted:
            from streams.sinks.opensearch import OpenSearchSink

            self.sinks.append(OpenSearchSink(settings.opensearch, settings.group(projection.name)))
            self.names.append("opensearch")

    def apply(self, writes: Sequence[Write], progress: Mapping[str, int]) -> int:
        return sum(sink.apply(writes, progress) for sink in self.sinks)

    def progress(self) -> dict[str, int]:
        """The oldest position per partition over the stores; empty when any store has none
        recorded (new, wiped or just added: it gets everything again)."""
        held = [sink.progress() for sink in self.sinks]
        if any(not h for h in held):
            return {}
        out: dict[str, int] = {}
        for h in held:
            for partition, offset in h.items():
                out[partition] = min(out.get(partition, offset), offset)
        return out

    def forget(self, partitions: Sequence[str]) -> None:
        for sink in self.sinks:
            sink.forget(partitions)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
