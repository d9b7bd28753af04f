"""Settings of the OLAP service (`SHOPSTREAM_OLAP__*`): where the store is, what it lands, how
often it builds the marts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shopstream.runtime.paths import REPO_ROOT
from shopstream.runtime.settings import ClickHouse, DeployableSettings, Kafka, OlapEndpoint, Registry


class OlapSettings(DeployableSettings):
    """`shopstream olap serve`, e.g. `SHOPSTREAM_OLAP__CLICKHOUSE__HOST=clickhouse`."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_OLAP__")

    # `local`: the embedded engine (chdb) on `path`, owned by this process; `server`: a ClickHouse
    # server over HTTP (docker-compose). The dbt target of the same name is used for builds.
    target: Literal["local", "server"] = "local"
    path: Path = REPO_ROOT / ".local" / "data" / "olap"
    clickhouse: ClickHouse = ClickHouse()

    # the service's own HTTP API (status, queries, dbt) and ClickHouse-compatible query endpoint
    listen: OlapEndpoint = OlapEndpoint()

    kafka: Kafka = Kafka()
    registry: Registry = Registry()
    consumer_group: str = "shopstream-olap-loader"
    # put before every topic name the loader reads: a loader of its own topics (benchmarks)
    topic_prefix: str = ""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # empty: shopstream.dlq.olap_loader
    dead_letter_topic: str = ""
    # ClickHouse wants few, large inserts: a batch closes after this long or this many records
    batch_seconds: float = Field(default=1.0, gt=0, le=60)
    batch_max_records: int = Field(default=100_000, gt=0)

    # dbt: the project, where its target/ and logs/ go, and how often the service rebuilds the
    # marts by itself (0: only on request, `shopstream olap dbt build`)
    dbt_project_dir: Path = REPO_ROOT / "dbt"
    dbt_work_dir: Path = REPO_ROOT / ".local" / "data" / "olap-dbt"
    build_interval_s: float = Field(default=300.0, ge=0)
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or "shopstream.dlq.olap_loader"

    @property
    def url(self) -> str:
        """Where the service's HTTP API answers."""
        return self.listen.url
