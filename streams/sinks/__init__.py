"""Sinks of the projections kernel: each applies a batch's writes coalesced per slot, idempotent
by version. `redis` keeps the source positions its writes reflect in the same atomic write;
`topic` writes projection records with ids that replays reproduce."""

from streams.sinks.redis import RedisSink, StoreRegressed
from streams.sinks.topic import TopicSink

__all__ = ["RedisSink", "StoreRegressed", "TopicSink"]
