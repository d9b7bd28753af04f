"""Each dataflow's stages fed real Avro records (registered schemas) through what every engine
does first (`streams.engines.inputs.Inputs`: decode, check the topic's event type and the key,
make the typed event, the projection's checks), then the kernel's in-memory run of a batch
(`streams.core.run_batch`), record by record: the writes each record causes, the dead letters.
Only the schema registry of the stack is used (for the schema ids)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dev.stack.stack import Stack
from shopstream.domain import EventType, envelope
from shopstream.serde import AvroSerde, RegistryClient
from streams import flash_sale_price_map as flash
from streams import inventory_snapshot as inv
from streams import revenue_windows as rev
from streams.core import NEVER, Emit, Invalidate, KeyState, Projection, Rank, StageRunner, Upsert, Write, run_batch
from streams.engines.inputs import Inputs, Unreadable
from streams.settings import FlashSalePriceMapSettings, InventorySnapshotSettings, RevenueWindowsSettings
from tests.support import stock_adjusted

T0 = 1_795_000_020_000


@pytest.fixture(scope="module")
def serde(stack: Stack) -> Iterator[AvroSerde]:
    registry = RegistryClient(stack.settings.registry.url)
    yield AvroSerde(registry)
    registry.close()


class Steps:
    """A projection fed one encoded record at a time, as an engine would."""

    def __init__(self, projection: Projection, serde: AvroSerde) -> None:
        self.projection, self.serde = projection, serde
        self.inputs = Inputs(projection, serde)
        self.runners = [StageRunner(stage) for stage in projection.stages]
        self.states: list[dict[str, KeyState[Any]]] = [{} for _ in projection.stages]
        self.offset = 0
        self.dead_letters: list[str] = []

    def send(self, event: EventType, payload: dict[str, Any], at_ms: int = T0, watermark: int = NEVER) -> list[Write]:
        record = envelope(
            event,
            payload,
            producer="test",
            correlation_id="corr-steps",
            trace_id="0" * 32,
            occurred_at=datetime.fromtimestamp(at_ms / 1000, UTC),
        )
        raw = self.serde.encode(event.subject, record)
        return self.raw(event, raw, record["partitionKey"].encode(), watermark)

    def raw(self, event: EventType, raw: bytes, key: bytes, watermark: int = NEVER) -> list[Write]:
        self.offset += 1
        try:
            typed = self.inputs.event(event.topic, raw, key)
        except Unreadable as exc:
            self.dead_letters.append(str(exc))
            return []
        item = self.inputs.item(typed, f"{event.topic}[0]", self.offset, watermark)
        return run_batch(self.projection, self.runners, self.states, [item])


def of(kind: type[Any], writes: list[Write]) -> list[Any]:
    return [w for w in writes if isinstance(w, kind)]


def adjusted(version: int, on_hand: int, reserved: int, reason: str = "RESTOCK", delta: int = 1) -> dict[str, Any]:
    return stock_adjusted("P1", delta, reason, on_hand, reserved, version)


def test_inventory_snapshot_steps(serde: AvroSerde) -> None:
    steps = Steps(inv.projection(InventorySnapshotSettings()), serde)
    first = steps.send(inv.SOURCE, adjusted(1, 5, 0))
    [upsert] = of(Upsert, first)
    assert upsert.key == "inventory:P1" and upsert.version == 1 and upsert.fields["available"] == "5"
    [emit] = of(Emit, first)
    record = emit.record()
    assert record["payload"]["available"] == 5 and record["correlationId"] == "corr-steps"
    assert record["producer"] == "inventory_snapshot" and record["partitionKey"] == "P1"
    ranks = {r.key: r.score for r in of(Rank, first)}
    assert ranks == {"top_products:ordered": 0, "inventory:low": 5}, "5 available is low stock"
    [second] = of(Upsert, steps.send(inv.SOURCE, adjusted(2, 5, 3, "RESERVATION", -3)))
    assert second.fields["available"] == "2" and second.fields["reserved"] == "3"
    assert steps.send(inv.SOURCE, adjusted(1, 5, 0)) == [], "an older version changes nothing"
    ranks = {r.key: r.score for r in of(Rank, steps.send(inv.SOURCE, adjusted(3, 50, 3, "RESTOCK", 45)))}
    assert ranks == {"top_products:ordered": 3, "inventory:low": None}, "3 units ordered; no longer low"
    assert steps.raw(inv.SOURCE, b"\x00\x00\x00\x00\x07junk", b"P1") == [], "undecodable: dead letter"
    good = serde.encode(
        inv.SOURCE.subject,
        envelope(inv.SOURCE, adjusted(4, 5, 0), producer="t", correlation_id="c", trace_id="0" * 32),
    )
    assert steps.raw(inv.SOURCE, good, b"P2") == [], "keyed as another product: dead letter"
    shipment = stock_adjusted("P1", 0, "SHIPMENT", 5, 0, 0) | {"onHand": None, "reserved": None, "stockVersion": None}
    assert steps.send(inv.SOURCE, shipment) == [], "a SHIPMENT without the after-state: dead letter"
    assert len(steps.dead_letters) == 3
    assert "is not the event's partition key" in steps.dead_letters[1]
    assert "after-state" in steps.dead_letters[2]


def test_revenue_windows_steps(serde: AvroSerde) -> None:
    steps = Steps(rev.projection(RevenueWindowsSettings(grace_ms=5_000, minute_ttl_s=60, day_ttl_s=60)), serde)
    paid = {
        "orderId": "O1",
        "userId": "U1",
        "paymentId": "PAY1",
        "amount": {"amountMinor": 1250, "currency": "EUR"},
        "paidAt": T0,
    }
    running = of(Upsert, steps.send(rev.PAID, paid))
    assert [(u.key.split(":")[1], u.fields["amountMinor"], u.fields["final"]) for u in running] == [
        ("1m", "1250", "0"),
        ("1d", "1250", "0"),
    ]
    assert steps.send(rev.PAID, paid) == [], "a redelivered payment books nothing"
    canceled = {"orderId": "O1", "userId": "U1", "reason": "refund", "canceledBy": "ADMIN", "releasedItems": []}
    after = steps.send(rev.CANCELED, canceled, T0 + 1_000)
    assert [u.fields["amountMinor"] for u in of(Upsert, after)] == ["0", "0"]
    [minute, _] = of(Emit, after)
    assert minute.record()["payload"]["window"] == "MINUTE" and minute.record()["payload"]["orders"] == 0
    bad = dict(paid, orderId="O9", amount={"amountMinor": -1, "currency": "EUR"})
    assert steps.send(rev.PAID, bad) == [] and "not a payment amount" in steps.dead_letters[0]
    # a payment two minutes later, read when the input's watermark has passed the first minute
    later = dict(paid, orderId="O2", paymentId="PAY2")
    closing = steps.send(rev.PAID, later, T0 + 120_000, watermark=T0 + 120_000)
    finals = [u for u in of(Upsert, closing) if u.fields["final"] == "1"]
    assert [(u.fields["windowStart"], u.fields["orders"]) for u in finals] == [(str(T0 - T0 % 60_000), "0")]
    assert {r.member for r in of(Rank, closing)} == {"EUR"}, "the currencies the dashboard lists"


def test_flash_sale_price_map_steps(serde: AvroSerde) -> None:
    steps = Steps(flash.projection(FlashSalePriceMapSettings()), serde)
    started = {
        "saleId": "S1",
        "productId": "P1",
        "salePrice": {"amountMinor": 800, "currency": "USD"},
        "regularPrice": {"amountMinor": 1000, "currency": "USD"},
        "startsAt": T0,
        "endsAt": T0 + 600_000,
    }
    [entry] = of(Upsert, steps.send(flash.STARTED, started))
    assert entry.key == "flash_price:P1" and entry.expire_at_ms == T0 + 600_000
    assert json.loads(entry.fields["sales"])[0]["priceMinor"] == 800
    assert steps.send(flash.STARTED, started) == [], "a duplicate changes nothing"
    ended = {"saleId": "S1", "productId": "P1", "endsAt": T0 + 600_000, "endedAt": T0 + 1_000, "endedBy": "ADMIN"}
    [gone] = of(Upsert, steps.send(flash.ENDED, ended, T0 + 1_000))
    assert json.loads(gone.fields["sales"]) == [] and gone.version > entry.version
    inverted = dict(started, saleId="S2", endsAt=T0 - 1)
    assert steps.send(flash.STARTED, inverted) == [] and "not a valid sale" in steps.dead_letters[0]
    assert not of(Invalidate, steps.send(flash.STARTED, dict(started, saleId="S3")))
