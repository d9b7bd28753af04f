"""Settings of the local stack, from the environment: the infrastructure it runs
(`SHOPSTREAM_<COMPONENT>__<FIELD>`, e.g. `SHOPSTREAM_KAFKA__PORT`; no deployable uses these
prefixes) and where it runs our deployables (`SHOPSTREAM_STACK__<DEPLOYABLE>__<FIELD>`, e.g.
`SHOPSTREAM_STACK__API__PORT`: the deployables' own prefixes, `SHOPSTREAM_API__...`, are theirs).
The stack hands each process its settings under the process's own names (`dev/stack/components`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from olap.settings import OlapSettings
from shopstream.runtime.paths import REPO_ROOT
from shopstream.runtime.settings import (
    LOCAL_DATABASE,
    LOCAL_PASSWORD,
    LOCAL_USER,
    ApiEndpoint,
    CassandraEndpoint,
    ConnectEndpoint,
    InventoryGrpcEndpoint,
    KafkaEndpoint,
    LegacyPaymentGatewayEndpoint,
    Mqtt,
    OlapEndpoint,
    OpaEndpoint,
    OpenSearchEndpoint,
    PaymentGatewayEndpoint,
    PostgresEndpoint,
    RabbitMQEndpoint,
    RedisEndpoint,
    RegistryEndpoint,
)


class PostgresSettings(PostgresEndpoint):
    user: str = LOCAL_USER
    password: SecretStr = SecretStr(LOCAL_PASSWORD)
    database: str = LOCAL_DATABASE

    @property
    def dsn(self) -> str:
        secret = self.password.get_secret_value()
        return f"postgresql://{self.user}:{secret}@{self.host}:{self.port}/{self.database}"


class RedisSettings(RedisEndpoint):
    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"


class KafkaSettings(KafkaEndpoint):
    controller_port: int = 9093
    heap: str = "512m"

    @property
    def bootstrap(self) -> str:
        return self.address


class ConnectSettings(ConnectEndpoint):
    heap: str = "512m"
    group_id: str = "shopstream-connect"
    # How the Connect worker reaches Postgres, when not as `postgres.host` (docker compose: "postgres").
    postgres_host: str | None = None


class CassandraSettings(CassandraEndpoint):
    """Apache Cassandra (one node): the serving store of orders_by_customer and inventory_snapshot;
    `port` is the CQL native transport."""

    # gossip/internode port: one node still binds it
    storage_port: int = 7000
    heap: str = "1g"


class OpenSearchSettings(OpenSearchEndpoint):
    """OpenSearch (one node, no security plugin locally): the product search index; `port` is HTTP."""

    transport_port: int = 9300
    heap: str = "512m"


class RegistryPorts(RegistryEndpoint):
    """Where the stack runs our schema registry, and the topic of its state."""

    topic: str = "_schemas"


class OpaSettings(OpaEndpoint):
    pass


class ApiPorts(ApiEndpoint):
    """Where the stack runs the writers (all on `host`): REST API, gRPC inventory, simulated
    payment gateways (REST, and the legacy SOAP one)."""

    grpc_port: int = InventoryGrpcEndpoint().port
    payment_port: int = PaymentGatewayEndpoint().port
    soap_payment_port: int = LegacyPaymentGatewayEndpoint().port


class RabbitMQSettings(RabbitMQEndpoint):
    """RabbitMQ (Debian): the partner webhooks' retry schedule."""

    # Erlang distribution port of the node (rabbitmqctl talks to it)
    dist_port: int = 25672
    user: str = LOCAL_USER
    password: SecretStr = SecretStr(LOCAL_PASSWORD)

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password.get_secret_value()}@{self.address}/"


class MosquittoSettings(Mqtt):
    """Mosquitto (Debian): the MQTT broker of the IoT stock ingest."""


class OlapPorts(OlapEndpoint):
    """Where the stack runs the OLAP service, and how often it rebuilds the marts by itself."""

    # seconds between dbt builds when new rows have landed (0: only `shopstream olap dbt build`)
    build_interval_s: float = OlapSettings.model_fields["build_interval_s"].default


class StreamsSettings(BaseModel):
    """The dataflows as the stack runs them: which engine runs which dataflow, where it is not
    the dataflow's default (`SHOPSTREAM_STREAMS__ENGINES='{"revenue_windows": "quix"}'`)."""

    engines: dict[str, Literal["quix", "bytewax"]] = {}


class Deployables(BaseModel):
    """Where the stack runs our deployables, under a prefix of the stack's own
    (`SHOPSTREAM_STACK__REGISTRY__PORT`): a deployable's own prefix is the deployable's."""

    registry: RegistryPorts = RegistryPorts()
    api: ApiPorts = ApiPorts()
    olap: OlapPorts = OlapPorts()


class StackSettings(BaseSettings):
    """Where the stack lives and which ports it takes; every field is overridable by environment,
    e.g. `SHOPSTREAM_KAFKA__PORT=19092`, `SHOPSTREAM_HOME=/data/shopstream`,
    `SHOPSTREAM_STACK__API__PORT=18000`."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_", env_nested_delimiter="__", extra="ignore")

    # Everything the stack writes (data, logs, jars, generated config) goes under this one folder.
    home: Path = REPO_ROOT / ".local"
    repo: Path = REPO_ROOT
    # Java for Kafka and Kafka Connect; empty means `java` on PATH.
    java_home: Path | None = None
    # Seconds `up` waits for every component to become healthy.
    up_timeout: float = 180.0

    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    kafka: KafkaSettings = KafkaSettings()
    connect: ConnectSettings = ConnectSettings()
    opa: OpaSettings = OpaSettings()
    rabbitmq: RabbitMQSettings = RabbitMQSettings()
    mosquitto: MosquittoSettings = MosquittoSettings()
    cassandra: CassandraSettings = CassandraSettings()
    opensearch: OpenSearchSettings = OpenSearchSettings()
    streams: StreamsSettings = StreamsSettings()
    # our deployables (`SHOPSTREAM_STACK__API__PORT`): `settings.api`, `.registry`, `.olap` below
    stack: Deployables = Deployables()

    @property
    def registry(self) -> RegistryPorts:
        return self.stack.registry

    @property
    def api(self) -> ApiPorts:
        return self.stack.api

    @property
    def olap(self) -> OlapPorts:
        return self.stack.olap

    @field_validator("home", "repo")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        # supervisord changes into the home folder: every path handed to it must be absolute
        return path.expanduser().resolve()

    def connector_values(self) -> dict[str, str]:
        """What `${...}` placeholders in connector config files are filled with."""
        pg = self.postgres
        return {
            # as seen from the Connect worker, which is not always where we are
            "postgres_host": self.connect.postgres_host or pg.host,
            "postgres_port": str(pg.port),
            "postgres_user": pg.user,
            "postgres_password": pg.password.get_secret_value(),
            "postgres_database": pg.database,
            "kafka_bootstrap": self.kafka.bootstrap,
        }

    def env_name(self, *path: str) -> str:
        """The environment variable that sets a field, for error messages: ('kafka', 'port')."""
        nested = ("stack",) if path[0] in Deployables.model_fields else ()
        return "SHOPSTREAM_" + "__".join(p.upper() for p in (*nested, *path))
