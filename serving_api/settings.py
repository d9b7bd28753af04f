"""Settings of the writers (REST API, gRPC inventory, payment adapter and gateway simulations), from
`SHOPSTREAM_API__*`; validated at start: a default secret outside dev is refused."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me-0123456789abcdef"


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_API__", extra="ignore")

    environment: str = "dev"
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    payment_host: str = "127.0.0.1"
    payment_port: int = 8090
    # the payment adapter: SOAP legacy gateway first (retried, behind a circuit breaker), REST fallback
    soap_payment_host: str = "127.0.0.1"
    soap_payment_port: int = 8091
    payment_soap_timeout: float = 2.0  # seconds per SOAP attempt (connect 1 s at most)
    payment_soap_attempts: int = Field(default=5, ge=1)
    payment_backoff_base: float = 0.1  # full jitter: retry n (from 1) waits uniform(0, min(cap, base * 2**(n-1)))
    payment_backoff_cap: float = 2.0
    # consecutive failed SOAP attempts that open the circuit: twice the attempts of one capture, so
    # that one order's retries alone never open it for everybody
    payment_breaker_fail_max: int = Field(default=10, ge=1)
    # partner webhook URLs on loopback/private addresses: refused unless allowed (the local stack
    # allows them, its partners are local test receivers; anywhere else they would be SSRF)
    webhook_allow_private_targets: bool = False
    payment_breaker_reset_timeout: float = 30.0  # seconds open before one trial (half-open)
    payment_breaker_success_threshold: int = Field(default=2, ge=1)  # successes in half-open that close it again
    payment_rest_timeout: float = 5.0
    postgres_dsn: SecretStr = SecretStr("postgresql://shopstream:shopstream@127.0.0.1:5432/shopstream")
    pool_size: int = 10
    registry_url: str = "http://127.0.0.1:8081"
    opa_url: str = "http://127.0.0.1:8181"
    # the caches and projections (flash-sale price map); read with a short timeout, no retry
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout: float = 0.25
    # the push channels (SSE) tail Kafka themselves, one consumer per API worker
    kafka_bootstrap: str = "127.0.0.1:9092"
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

    @property
    def grpc_target(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    @property
    def payment_url(self) -> str:
        return f"http://{self.payment_host}:{self.payment_port}"

    @property
    def soap_payment_wsdl(self) -> str:
        return f"http://{self.soap_payment_host}:{self.soap_payment_port}/soap?wsdl"
