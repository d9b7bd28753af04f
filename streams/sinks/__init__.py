"""Sinks of the projections kernel: each applies a batch's writes coalesced per slot, idempotent
by version. `redis` keeps the source positions its writes reflect in the same atomic write;
`cassandra` writes rows with their version as the write timestamp, then the positions;
`opensearch` writes search documents in bulk with external versions, then the positions; `topic`
writes projection records with ids that replays reproduce; `stores` applies a dataflow's store
sinks together and resumes it from the oldest of their positions."""

from streams.sinks.redis import RedisSink, StoreRegressed
from streams.sinks.stores import Stores
from streams.sinks.topic import TopicSink

__all__ = ["RedisSink", "StoreRegressed", "Stores", "TopicSink"]
