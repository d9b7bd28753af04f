"""The payment adapter: legacy SOAP first (backoff with jitter, circuit breaker), REST as fallback."""

from __future__ import annotations

from serving_api.payments.adapter import PaymentAdapter, PaymentOutcome
from serving_api.payments.legacy_soap import GatewayFailure, LegacySoapGateway
from serving_api.payments.resilience import Backoff, circuit_breaker
from serving_api.payments.rest import RestPaymentGateway
from serving_api.settings import ApiSettings
from shopstream.domain import PaymentRefused


def build_adapter(settings: ApiSettings) -> PaymentAdapter:
    """The adapter as the API runs it, from `SHOPSTREAM_API__*` settings."""
    return PaymentAdapter(
        LegacySoapGateway(settings.legacy_payment_gateway.wsdl, settings.payment_soap_timeout),
        RestPaymentGateway(settings.payment_gateway.url, settings.payment_rest_timeout),
        circuit_breaker(
            LegacySoapGateway.name,
            settings.payment_breaker_fail_max,
            settings.payment_breaker_reset_timeout,
            settings.payment_breaker_success_threshold,
            exclude=[PaymentRefused],
        ),
        Backoff(settings.payment_soap_attempts, settings.payment_backoff_base, settings.payment_backoff_cap),
    )


__all__ = [
    "Backoff",
    "GatewayFailure",
    "LegacySoapGateway",
    "PaymentAdapter",
    "PaymentOutcome",
    "PaymentRefused",
    "build_adapter",
    "circuit_breaker",
]
