"""The MQTT stock-delta contract: topic `iot/inventory/{sku}/delta`, a JSON object payload

    {"delta": -2, "reason": "SENSOR", "deviceId": "shelf-7", "seq": 17}

`delta` (a non-zero integer, |delta| <= 1,000,000) is required; `reason` defaults to SENSOR
(SENSOR, RESTOCK, MANUAL, OTHER: what the writers accept); `deviceId` and `seq` together name the
message: they make the idempotency key of the adjustment, so a redelivery is applied once. A
message without them is applied at least once (a redelivery after a broker restart applies again).

`parse_delta` is pure and total: any topic and bytes give a `StockDelta` or a `Rejected` with the
dead-letter reason, never an exception."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

TOPIC_FILTER = "iot/inventory/+/delta"
REASONS = frozenset({"SENSOR", "RESTOCK", "MANUAL", "OTHER"})
MAX_DELTA = 1_000_000
MAX_SEQ = 2**63 - 1
MAX_PAYLOAD = 4096
SKU = re.compile(r"[A-Za-z0-9._-]{1,64}")  # the catalog's SKU rule
DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
FIELDS = frozenset({"delta", "reason", "deviceId", "seq"})

# the dead-letter reasons of a payload or topic (the service adds unknown-sku and rejected)
BAD_TOPIC = "bad-topic"
TOO_LARGE = "too-large"
NOT_UTF8 = "not-utf8"
NOT_JSON = "not-json"
NOT_OBJECT = "not-object"
UNKNOWN_FIELD = "unknown-field"
BAD_DELTA = "bad-delta"
BAD_REASON = "bad-reason"
BAD_DEVICE_ID = "bad-device-id"
BAD_SEQ = "bad-seq"


@dataclass(frozen=True)
class StockDelta:
    sku: str
    delta: int
    reason: str
    device_id: str | None = None
    seq: int | None = None

    @property
    def idempotency_key(self) -> str | None:
        """`iot:{deviceId}:{sku}:{seq}` (at most 200 characters), or None without an id."""
        if self.device_id is None or self.seq is None:
            return None
        return f"iot:{self.device_id}:{self.sku}:{self.seq}"

    def to_payload(self) -> bytes:
        body: dict[str, Any] = {"delta": self.delta, "reason": self.reason}
        if self.device_id is not None:
            body["deviceId"] = self.device_id
        if self.seq is not None:
            body["seq"] = self.seq
        return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str


def topic_for(sku: str) -> str:
    return f"iot/inventory/{sku}/delta"


def sku_of(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) != 4 or parts[:2] != ["iot", "inventory"] or parts[3] != "delta":
        return None
    return parts[2] if SKU.fullmatch(parts[2]) else None


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value (a nested one by its type only)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)[:100]
    return f"a JSON {type(value).__name__}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_delta(topic: str, payload: bytes) -> StockDelta | Rejected:
    """The delta a message carries, or why it is rejected."""
    sku = sku_of(topic)
    if sku is None:
        return Rejected(BAD_TOPIC, f"not iot/inventory/{{sku}}/delta with a valid SKU: {topic[:200]!r}")
    if len(payload) > MAX_PAYLOAD:
        return Rejected(TOO_LARGE, f"{len(payload)} bytes (at most {MAX_PAYLOAD})")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(NOT_UTF8, str(exc))
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Rejected(NOT_JSON, str(exc)[:200])
    if not isinstance(body, dict):
        return Rejected(NOT_OBJECT, f"a JSON {type(body).__name__}, not an object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return Rejected(UNKNOWN_FIELD, f"unknown field(s): {', '.join(unknown)[:200]}")
    delta = body.get("delta")
    if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0 or abs(delta) > MAX_DELTA:
        return Rejected(BAD_DELTA, f"delta must be a non-zero integer within ±{MAX_DELTA}, got {_show(delta)}")
    reason = body.get("reason", "SENSOR")
    if not isinstance(reason, str) or reason not in REASONS:
        return Rejected(BAD_REASON, f"reason must be one of {', '.join(sorted(REASONS))}, got {_show(reason)}")
    device_id, seq = body.get("deviceId"), body.get("seq")
    if device_id is not None and not (isinstance(device_id, str) and DEVICE_ID.fullmatch(device_id)):
        return Rejected(BAD_DEVICE_ID, f"deviceId must match {DEVICE_ID.pattern}, got {_show(device_id)}")
    if seq is not None and not (_is_int(seq) and 0 <= seq <= MAX_SEQ):
        return Rejected(BAD_SEQ, f"seq must be an integer in [0, 2^63), got {_show(seq)}")
    if (device_id is None) != (seq is None):
        return Rejected(BAD_SEQ, "deviceId and seq come together (they name the message), or neither")
    return StockDelta(sku, delta, reason, device_id, seq)
