"""The signature of a webhook POST: `X-BV-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`
keyed by the subscription's secret, with `X-BV-Timestamp` (Unix seconds) so that a receiver can
refuse a replayed request (one older than its tolerance, or a signature it has seen)."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-BV-Signature"
TIMESTAMP_HEADER = "X-BV-Timestamp"
DELIVERY_HEADER = "X-BV-Delivery-Id"  # the idempotency id: the same on every retry of a delivery
EVENT_TYPE_HEADER = "X-BV-Event-Type"
ATTEMPT_HEADER = "X-BV-Attempt"
SCHEME = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-BV-Signature value of `body` sent at `timestamp`."""
    message = str(timestamp).encode() + b"." + body
    return SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str | int,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a partner checks: the signature matches (constant-time) and the timestamp is within
    `tolerance` seconds of `now`."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - sent_at) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent_at, body), signature)
