"""Settings of the writers, one class per deployable: the REST/GraphQL API (`SHOPSTREAM_API__*`)
and the gRPC inventory service (`SHOPSTREAM_INVENTORY_GRPC__*`); validated at start: a default
secret outside dev is refused."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shopstream.runtime.settings import (
    ApiEndpoint,
    Cassandra,
    DeployableSettings,
    InventoryGrpcEndpoint,
    Kafka,
    LegacyPaymentGatewayEndpoint,
    Opa,
    OpenSearch,
    PaymentGatewayEndpoint,
    Postgres,
    Redis,
    Registry,
)

DEV_SECRET = "dev-only-secret-change-me-0123456789abcdef"


class ApiSettings(DeployableSettings):
    """The storefront API (`python -m serving_api`), e.g. `SHOPSTREAM_API__LISTEN__PORT=8000`,
    `SHOPSTREAM_API__POSTGRES__DSN=...`."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_API__")

    environment: str = "dev"
    listen: ApiEndpoint = ApiEndpoint()
    # the gRPC inventory service the API reserves stock through
    inventory: InventoryGrpcEndpoint = InventoryGrpcEndpoint()
    # the payment adapter: SOAP legacy gateway first (retried, behind a circuit breaker), REST fallback
    payment_gateway: PaymentGatewayEndpoint = PaymentGatewayEndpoint()
    legacy_payment_gateway: LegacyPaymentGatewayEndpoint = LegacyPaymentGatewayEndpoint()
    payment_soap_timeout: float = 2.0  # seconds per SOAP attempt (connect 1 s at most)
    payment_soap_attempts: int = Field(default=5, ge=1)
    payment_backoff_base: float = 0.1  # full jitter: retry n (from 1) waits uniform(0, min(cap, base * 2**(n-1)))
    payment_backoff_cap: float = 2.0
    # consecutive failed SOAP attempts that open the circuit: twice the attempts of one capture, so
    # that one order's retries alone never open it for everybody
    payment_breaker_fail_max: int = Field(default=10, ge=1)
    payment_breaker_reset_timeout: float = 30.0  # seconds open before one trial (half-open)
    payment_breaker_success_threshold: int = Field(default=2, ge=1)  # successes in half-open that close it again
    payment_rest_timeout: float = 5.0
    # how long a capture in flight keeps the order's other payments and cancels out (409): longer
    # than the adapter's worst case (at the defaults 5 SOAP attempts x 2 s + backoff <= 1.5 s + REST
    # 5 s = 16.5 s); an API that died mid-capture leaves one behind that expires after it
    payment_intent_ttl: float = Field(default=120.0, gt=0)
    # partner webhook URLs on loopback/private addresses: refused unless allowed (the local stack
    # allows them, its partners are local test receivers; anywhere else they would be SSRF)
    webhook_allow_private_targets: bool = False
    postgres: Postgres = Postgres()
    registry: Registry = Registry()
    opa: Opa = Opa()
    # the caches and projections (flash-sale price map); read with a short timeout, no retry
    redis: Redis = Redis()
    # the serving store of the order history (orders_by_customer); read with a short timeout
    cassandra: Cassandra = Cassandra()
    # the serving store of the product search (the alias `products`); read with a short timeout
    opensearch: OpenSearch = OpenSearch()
    # the push channels (SSE) tail Kafka themselves, one consumer per API worker
    kafka: Kafka = Kafka()
    # JWT: HS256 with a shared secret (dev), or RS256 against a JWKS URL
    jwt_algorithm: str = "HS256"
    jwt_secret: SecretStr = SecretStr(DEV_SECRET)
    jwt_jwks_url: str | None = None
    jwt_issuer: str = "shopstream"
    idempotency_hours: int = 24
    # where spans go (JSON lines); empty: spans are made (ids in events) but not written
    traces_file: str = ""

    @model_validator(mode="after")
    def _no_dev_secret_outside_dev(self) -> ApiSettings:
        if (
            self.environment != "dev"
            and self.jwt_algorithm == "HS256"
            and (self.jwt_secret.get_secret_value() == DEV_SECRET)
        ):
            raise ValueError("SHOPSTREAM_API__JWT_SECRET must be set outside the dev environment")
        if self.jwt_algorithm not in ("HS256", "RS256"):
            raise ValueError("SHOPSTREAM_API__JWT_ALGORITHM must be HS256 or RS256")
        if self.jwt_algorithm == "RS256" and not self.jwt_jwks_url:
            raise ValueError("RS256 needs SHOPSTREAM_API__JWT_JWKS_URL")
        return self


class InventoryGrpcSettings(DeployableSettings):
    """The gRPC inventory service (`python -m serving_api.grpc`), e.g.
    `SHOPSTREAM_INVENTORY_GRPC__LISTEN__PORT=50051`."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_INVENTORY_GRPC__")

    listen: InventoryGrpcEndpoint = InventoryGrpcEndpoint()
    postgres: Postgres = Postgres()
    registry: Registry = Registry()
    # where spans go (JSON lines); empty: spans are made but not written
    traces_file: str = ""
