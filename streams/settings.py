"""Settings of the dataflows: one class per dataflow (its own environment prefix, e.g.
`SHOPSTREAM_REVENUE_WINDOWS__COMMIT_INTERVAL=0.5`), on a shared base."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shopstream.runtime.paths import REPO_ROOT
from shopstream.runtime.settings import Cassandra, DeployableSettings, Kafka, OpenSearch, Postgres, Redis, Registry

Engine = Literal["quix", "bytewax"]
Store = Literal["redis", "cassandra", "opensearch"]


class DataflowSettings(DeployableSettings):
    """What every dataflow has (`SHOPSTREAM_<DATAFLOW>__KAFKA__BOOTSTRAP`, `..__REDIS__URL`, ...);
    each dataflow's class below has its own prefix."""

    # which engine runs the dataflow (`streams.engines`); each dataflow's class has its default
    engine: Engine = "bytewax"
    kafka: Kafka = Kafka()
    registry: Registry = Registry()
    redis: Redis = Redis()
    cassandra: Cassandra = Cassandra()
    opensearch: OpenSearch = OpenSearch()
    # the stores this deployment writes, of those the projection writes (`Projection.stores`):
    # Redis always; leaving Cassandra (OpenSearch) out runs the projection without its Cassandra
    # tables (search documents)
    stores: tuple[Store, ...] = ("redis", "cassandra", "opensearch")
    # where Quix keeps the dataflow's local state (RocksDB); its changelog topics are the backup
    state_dir: Path = REPO_ROOT / ".local" / "data" / "streams"
    # empty: shopstream-<dataflow>
    consumer_group: str = ""
    # put before every input and output topic name: a copy of the dataflow on topics of its own
    # (benchmarks, rehearsals); the registry subjects stay those of the event types
    topic_prefix: str = ""
    # where a new consumer group starts: the whole history (projections are rebuilt from it)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # empty: shopstream.dlq.<dataflow>
    dead_letter_topic: str = ""
    # state backed up to compacted changelog topics (restored from them on another machine);
    # off only for single-process tests of the steps
    changelog_topics: bool = True
    # exactly-once: state, offsets and output records commit in one Kafka transaction
    exactly_once: bool = True
    # seconds between checkpoints: how often outputs become visible (Quix's default is 5 s;
    # freshness wants sub-second, and each commit costs a transaction)
    commit_interval: float = Field(default=0.1, gt=0, le=60)
    # how long the loop waits for a record before it can commit what it has: an idle dataflow
    # holds its last outputs (uncommitted, so unreadable) this long at worst. Quix's 1 s default
    # added up to a second per stage to freshness
    poll_timeout: float = Field(default=0.05, gt=0, le=5)
    # Quix's partition time alignment (on by itself when a dataflow reads several topics): it
    # holds a record back until every partition has one buffered or looks idle, and partitions
    # written transactionally (our repartition topic) never look idle between records — their
    # commit markers sit above the last record — which cost seconds of latency. Our steps do
    # not need it: they are order-independent across topics and window by event time.
    time_alignment: bool = False
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"
    # Bytewax: records per partition per poll, and seconds between recovery snapshots (epochs;
    # a restart replays at most this much, which the idempotent sinks make harmless)
    batch_size: int = Field(default=5_000, ge=1, le=100_000)
    epoch_interval: float = Field(default=1.0, gt=0, le=600)
    # a replay (`shopstream replay run`): seconds between its checkpoints (a run killed continues
    # from the last one)
    replay_checkpoint_interval: float = Field(default=15.0, gt=0, le=600)
    # the OLTP database, for `shopstream replay run --reseed` only (it writes Debezium's
    # execute-snapshot signal, `streams.replay.reseed`); no dataflow connects to it
    postgres: Postgres = Postgres()
    # how long a re-seed waits for the connector's incremental snapshot to end
    reseed_timeout: float = Field(default=600.0, gt=0)

    def group(self, dataflow: str) -> str:
        """The consumer group (Quix) and the name of the dataflow's progress in the stores."""
        return self.consumer_group or f"shopstream-{dataflow}"

    def dead_letter(self, dataflow: str) -> str:
        return self.dead_letter_topic or f"{self.topic_prefix}shopstream.dlq.{dataflow}"

    def progress_key(self, dataflow: str) -> str:
        """The Redis hash of the source positions the dataflow's Redis writes reflect."""
        return f"streams:progress:{self.group(dataflow)}"

    def heartbeat(self, dataflow: str) -> Path:
        """A file the running engine touches every second or so (the stack's health probe)."""
        return Path(self.state_dir) / "heartbeat" / self.group(dataflow)

    def recovery_dir(self, dataflow: str) -> Path:
        """Bytewax's recovery snapshots."""
        return Path(self.state_dir) / "bytewax" / self.group(dataflow)


class InventorySnapshotSettings(DataflowSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_INVENTORY_SNAPSHOT__")


class RevenueWindowsSettings(DataflowSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_REVENUE_WINDOWS__")

    # how long after a window's end late events still count (event time)
    grace_ms: int = Field(default=10_000, ge=0, le=3_600_000)
    # how long window values stay in Redis (the topic keeps them for good)
    minute_ttl_s: int = Field(default=2 * 86_400, ge=1)
    day_ttl_s: int = Field(default=90 * 86_400, ge=1)


class FlashSalePriceMapSettings(DataflowSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_FLASH_SALE_PRICE_MAP__")

    # a product whose sales are all over keeps an empty entry this long (then it expires)
    empty_ttl_s: int = Field(default=3_600, ge=1)


class ServingCachesSettings(DataflowSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_SERVING_CACHES__")

    # how long after a product update's event time its floor version stays (an instant of event
    # time, so a replay sets the same one): it must outlast any read that raced the update, and is
    # kept at a cached copy's life (serving_api.services.product_cache.TTL_MS)
    floor_ttl_s: int = Field(default=600, ge=1)


class OrdersByCustomerSettings(DataflowSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_ORDERS_BY_CUSTOMER__")


class ProductSearchIndexSettings(DataflowSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_PRODUCT_SEARCH_INDEX__")
