"""The settings models every deployable composes, each default in one place: where a service
listens (`Endpoint` and one subclass per service, with its port) and how a client reaches the
shared infrastructure (`Kafka`, `Registry`, `Redis`, `Postgres`, `RabbitMQ`, `Opa`, `Mqtt`, ...).

A deployable's settings class derives from `DeployableSettings` with an environment prefix of its
own and nests these models: `SHOPSTREAM_OLAP__KAFKA__BOOTSTRAP=kafka:29092`,
`SHOPSTREAM_API__LISTEN__PORT=8000`. Only entry points build settings; the code below them takes
the object (or one nested model) as an argument and never reads the environment."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = "127.0.0.1"


class DeployableSettings(BaseSettings):
    """The base of every deployable's settings: `__` separates nested fields, unknown variables
    are ignored (several deployables share one environment)."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")


class Endpoint(BaseModel):
    """A host and port: where a server listens, or where its clients reach it."""

    host: str = LOOPBACK
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


# --- our services, each on its port ---------------------------------------------------------------
class ApiEndpoint(Endpoint):
    """The storefront REST/GraphQL API."""

    port: int = 8000


class InventoryGrpcEndpoint(Endpoint):
    """The gRPC inventory service."""

    port: int = 50051


class PaymentGatewayEndpoint(Endpoint):
    """The REST payment gateway (simulated here)."""

    port: int = 8090


class LegacyPaymentGatewayEndpoint(Endpoint):
    """The legacy SOAP 1.1 payment gateway (simulated here)."""

    port: int = 8091

    @property
    def wsdl(self) -> str:
        return f"{self.url}/soap?wsdl"


class RegistryEndpoint(Endpoint):
    """Our schema registry (the Confluent REST API)."""

    port: int = 8081


class OlapEndpoint(Endpoint):
    """The OLAP service's HTTP API."""

    port: int = 8124


class IotIngestEndpoint(Endpoint):
    """The IoT ingest's /health and /metrics."""

    port: int = 8097


class WebhookMetricsEndpoint(Endpoint):
    """The webhook dispatcher's /metrics (port 0: none)."""

    port: int = 9465


# --- the infrastructure, where it listens ------------------------------------------------------------
class PostgresEndpoint(Endpoint):
    port: int = 5432


class RedisEndpoint(Endpoint):
    port: int = 6379


class KafkaEndpoint(Endpoint):
    port: int = 9092


class ConnectEndpoint(Endpoint):
    port: int = 8083


class OpaEndpoint(Endpoint):
    port: int = 8181


class RabbitMQEndpoint(Endpoint):
    port: int = 5672


class CassandraEndpoint(Endpoint):
    """Cassandra's native protocol (CQL)."""

    port: int = 9042


class OpenSearchEndpoint(Endpoint):
    """OpenSearch's REST API."""

    port: int = 9200


class Mqtt(Endpoint):
    """The MQTT broker (Mosquitto)."""

    port: int = 1883


class ClickHouse(Endpoint):
    """A ClickHouse server over HTTP (the OLAP service's `server` target)."""

    port: int = 8123
    user: str = "default"
    password: SecretStr = SecretStr("")


# the local stack's database and broker accounts, which the default client settings below use
LOCAL_USER = "shopstream"
LOCAL_PASSWORD = "shopstream"
LOCAL_DATABASE = "shopstream"


# --- how clients reach them ----------------------------------------------------------------------------
class Kafka(BaseModel):
    bootstrap: str = KafkaEndpoint().address


class Registry(BaseModel):
    url: str = RegistryEndpoint().url


class Redis(BaseModel):
    url: str = f"redis://{RedisEndpoint().address}/0"
    # seconds per command and per connect; the API reads with a short one and no retry
    timeout: float = Field(default=0.25, gt=0)


class Postgres(BaseModel):
    dsn: SecretStr = SecretStr(
        f"postgresql://{LOCAL_USER}:{LOCAL_PASSWORD}@{PostgresEndpoint().address}/{LOCAL_DATABASE}"
    )
    pool_size: int = Field(default=10, ge=1)


class RabbitMQ(BaseModel):
    url: SecretStr = SecretStr(f"amqp://{LOCAL_USER}:{LOCAL_PASSWORD}@{RabbitMQEndpoint().address}/")


class Opa(BaseModel):
    url: str = OpaEndpoint().url


CASSANDRA_KEYSPACE = "shopstream"


class Cassandra(BaseModel):
    """How a client reaches Cassandra: contact points (`host:port`, comma-separated) and the keyspace."""

    contact_points: str = CassandraEndpoint().address
    keyspace: str = CASSANDRA_KEYSPACE
    # seconds per request (the API reads with a short one: a store that does not answer is a 503)
    timeout: float = Field(default=2.0, gt=0)

    def hosts(self) -> list[tuple[str, int]]:
        out = []
        for point in self.contact_points.split(","):
            host, _, port = point.strip().rpartition(":")
            out.append((host or point.strip(), int(port) if host else CassandraEndpoint().port))
        return out


class OpenSearch(BaseModel):
    """How a client reaches OpenSearch, and the alias of the product index."""

    url: str = OpenSearchEndpoint().url
    products_alias: str = "products"
    timeout: float = Field(default=2.0, gt=0)


class Api(BaseModel):
    """The storefront API as its clients (ingest, simulators) reach it."""

    url: str = ApiEndpoint().url


__all__ = [
    "LOCAL_DATABASE",
    "LOCAL_PASSWORD",
    "LOCAL_USER",
    "LOOPBACK",
    "CASSANDRA_KEYSPACE",
    "Api",
    "ApiEndpoint",
    "Cassandra",
    "CassandraEndpoint",
    "ClickHouse",
    "ConnectEndpoint",
    "DeployableSettings",
    "Endpoint",
    "InventoryGrpcEndpoint",
    "IotIngestEndpoint",
    "Kafka",
    "KafkaEndpoint",
    "LegacyPaymentGatewayEndpoint",
    "Mqtt",
    "OlapEndpoint",
    "Opa",
    "OpaEndpoint",
    "OpenSearch",
    "OpenSearchEndpoint",
    "PaymentGatewayEndpoint",
    "Postgres",
    "PostgresEndpoint",
    "RabbitMQ",
    "RabbitMQEndpoint",
    "Redis",
    "RedisEndpoint",
    "Registry",
    "RegistryEndpoint",
    "WebhookMetricsEndpoint",
]
