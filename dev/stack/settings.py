"""Settings of the local stack, from the environment (`SHOPSTREAM_<COMPONENT>__<FIELD>`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shopstream.runtime.paths import REPO_ROOT


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "shopstream"
    password: SecretStr = SecretStr("shopstream")
    database: str = "shopstream"

    @property
    def dsn(self) -> str:
        secret = self.password.get_secret_value()
        return f"postgresql://{self.user}:{secret}@{self.host}:{self.port}/{self.database}"


class RedisSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 6379

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


class KafkaSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


class ConnectSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8083
    heap: str = "512m"
    group_id: str = "shopstream-connect"
    # How the Connect worker reaches Postgres, when not as `postgres.host` (docker compose: "postgres").
    postgres_host: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RegistrySettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8081
    topic: str = "_schemas"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class OpaSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8181

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ApiPorts(BaseModel):
    """Where the writers listen: REST API, gRPC inventory, simulated payment gateways (REST, and
    the legacy SOAP one)."""

    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int = 50051
    payment_port: int = 8090
    soap_payment_port: int = 8091

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RabbitMQSettings(BaseModel):
    """RabbitMQ (Debian): the partner webhooks' retry schedule."""

    host: str = "127.0.0.1"
    port: int = 5672
    # Erlang distribution port of the node (rabbitmqctl talks to it)
    dist_port: int = 25672
    user: str = "shopstream"
    password: SecretStr = SecretStr("shopstream")

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password.get_secret_value()}@{self.host}:{self.port}/"


class MosquittoSettings(BaseModel):
    """Mosquitto (Debian): the MQTT broker of the IoT stock ingest."""

    host: str = "127.0.0.1"
    port: int = 1883


class OlapPorts(BaseModel):
    """Where the OLAP service listens, and how often it rebuilds the marts by itself."""

    host: str = "127.0.0.1"
    port: int = 8124
    # seconds between dbt builds when new rows have landed (0: only `shopstream olap dbt build`)
    build_interval_s: float = 300.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class StreamsSettings(BaseModel):
    """The dataflows as the stack runs them: which engine runs which dataflow, where it is not
    the dataflow's default (`SHOPSTREAM_STREAMS__ENGINES='{"revenue_windows": "quix"}'`)."""

    engines: dict[str, Literal["quix", "bytewax"]] = {}


class StackSettings(BaseSettings):
    """Where the stack lives and which ports it takes; every field is overridable by environment,
    e.g. `SHOPSTREAM_KAFKA__PORT=19092`, `SHOPSTREAM_HOME=/data/shopstream`."""

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
    registry: RegistrySettings = RegistrySettings()
    opa: OpaSettings = OpaSettings()
    api: ApiPorts = ApiPorts()
    olap: OlapPorts = OlapPorts()
    rabbitmq: RabbitMQSettings = RabbitMQSettings()
    mosquitto: MosquittoSettings = MosquittoSettings()
    streams: StreamsSettings = StreamsSettings()

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
        return "SHOPSTREAM_" + "__".join(p.upper() for p in path)
