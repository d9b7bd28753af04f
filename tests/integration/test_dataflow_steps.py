"""Each dataflow's Quix pipeline of steps, record by record with `sdf.test()`: real Avro records
(registered schemas) through the dataflow's own decoding and stateful steps, Quix state in a
temporary folder. (Quix 3.28 reads topic metadata from a broker, so this runs next to the stack.)"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import MessageContext
from streams.runtime import Dataflow, Projected

from shopstream.domain import EventType, envelope
from shopstream.stack.stack import Stack
from streams import flash_sale_price_map as flash
from streams import inventory_snapshot as inv
from streams import revenue_windows as rev
from streams.settings import DataflowSettings, FlashSalePriceMapSettings, InventorySnapshotSettings
from streams.settings import RevenueWindowsSettings as RevenueSettings
from tests.support import stock_adjusted

T0 = 1_795_000_020_000


def local(settings_class: type[DataflowSettings], stack: Stack, tmp_path: Path, **extra: Any) -> DataflowSettings:
    return settings_class(
        kafka_bootstrap=stack.settings.kafka.bootstrap,
        registry_url=stack.settings.registry.url,
        state_dir=tmp_path,
        consumer_group=f"unit-{uuid.uuid4().hex[:8]}",
        exactly_once=False,
        changelog_topics=False,
        **extra,
    )


@pytest.fixture
def flows() -> Iterator[list[Dataflow]]:
    """Dataflows a test makes, closed afterwards."""
    made: list[Dataflow] = []
    yield made
    for flow in made:
        flow.close()


class Steps:
    """A dataflow's SDF ready for `sdf.test()`: its state partition 0 assigned, a checkpoint open."""

    def __init__(self, flow: Dataflow, sdf: StreamingDataFrame) -> None:
        self.flow, self.sdf = flow, sdf
        flow.app._state_manager.on_partition_assign(stream_id=sdf.stream_id, partition=0, committed_offsets={})
        flow.app._processing_context.init_checkpoint()
        self.offset = 0

    def send(self, event: EventType, payload: dict[str, Any], at_ms: int = T0) -> list[Any]:
        record = envelope(
            event,
            payload,
            producer="test",
            correlation_id="corr-steps",
            trace_id="0" * 32,
            occurred_at=datetime.fromtimestamp(at_ms / 1000, UTC),
        )
        raw = self.flow.serde.encode(event.subject, record)
        return self.raw(event, raw, record["partitionKey"])

    def raw(self, event: EventType, raw: bytes, key: str) -> list[Any]:
        self.offset += 1
        topic = next(t for t in self.sdf.topics if t.name == event.topic)
        ctx = MessageContext(event.topic, 0, self.offset, len(raw))
        return [value for value, *_ in self.sdf.test(raw, key=key.encode(), ctx=ctx, topic=topic)]


def adjusted(version: int, on_hand: int, reserved: int, reason: str = "RESTOCK", delta: int = 1) -> dict[str, Any]:
    return stock_adjusted("P1", delta, reason, on_hand, reserved, version)


def test_inventory_snapshot_steps(stack: Stack, tmp_path: Path, flows: list[Dataflow]) -> None:
    flow = Dataflow(inv.NAME, local(InventorySnapshotSettings, stack, tmp_path))
    flows.append(flow)
    steps = Steps(flow, flow.source(inv.SOURCE, inv.parse).apply(inv.snapshot_step, stateful=True))
    [first] = steps.send(inv.SOURCE, adjusted(1, 5, 0))
    assert isinstance(first, Projected)
    assert first.redis.key == "inventory:P1" and first.redis.version == 1
    assert first.record is not None and first.record["payload"]["available"] == 5
    assert first.record["correlationId"] == "corr-steps" and first.record["producer"] == "inventory_snapshot"
    [second] = steps.send(inv.SOURCE, adjusted(2, 5, 3, "RESERVATION", -3))
    assert second.redis.fields["available"] == "2" and second.redis.fields["reserved"] == "3"
    assert steps.send(inv.SOURCE, adjusted(1, 5, 0)) == [None], "an older version changes nothing"
    assert steps.raw(inv.SOURCE, b"\x00\x00\x00\x00\x07junk", "P1") == [], "undecodable: dead letter, no output"
    good = flow.serde.encode(
        inv.SOURCE.subject,
        envelope(inv.SOURCE, adjusted(3, 5, 0), producer="t", correlation_id="c", trace_id="0" * 32),
    )
    assert steps.raw(inv.SOURCE, good, "P2") == [], "keyed as another product: dead letter"
    assert flow.dead_letters == 2


def test_revenue_windows_steps(stack: Stack, tmp_path: Path, flows: list[Dataflow]) -> None:
    flow = Dataflow(rev.NAME, local(RevenueSettings, stack, tmp_path))
    flows.append(flow)
    sources = flow.source(rev.PAID, rev.parse).concat(flow.source(rev.CANCELED, rev.parse))
    orders = Steps(flow, sources.apply(rev.order_step, stateful=True, expand=True))
    paid = {
        "orderId": "O1",
        "userId": "U1",
        "paymentId": "PAY1",
        "amount": {"amountMinor": 1250, "currency": "EUR"},
        "paidAt": T0,
    }
    [plus] = orders.send(rev.PAID, paid)
    assert plus["delta"] == {"currency": "EUR", "at": T0, "amount_minor": 1250, "orders": 1, "order_id": "O1"}
    assert orders.send(rev.PAID, paid) == [], "a redelivered payment books nothing"
    canceled = {"orderId": "O1", "userId": "U1", "reason": "refund", "canceledBy": "ADMIN", "releasedItems": []}
    [minus] = orders.send(rev.CANCELED, canceled, T0 + 1_000)
    assert minus["delta"]["amount_minor"] == -1250
    bad = dict(paid, amount={"amountMinor": -1, "currency": "EUR"})
    assert orders.send(rev.PAID, bad) == [] and flow.dead_letters == 1

    # step 2 runs behind the repartition by currency: fed here the JSON step 1 emits
    windows_flow = Dataflow(rev.NAME, local(RevenueSettings, stack, tmp_path / "w"))
    flows.append(windows_flow)
    topic = windows_flow.app.topic(f"unit.revenue.{uuid.uuid4().hex[:8]}", value_deserializer="json")
    sdf = windows_flow.app.dataframe(topic).apply(
        rev.window_step(5_000, {"1m": 60, "1d": 60}), stateful=True, expand=True
    )
    windows = Steps(windows_flow, sdf)

    def book(item: dict[str, Any]) -> list[Projected]:  # sdf.test() hands the value over as it is
        windows.offset += 1
        return [v for v, *_ in sdf.test(item, key="EUR", ctx=MessageContext(topic.name, 0, windows.offset, 100))]

    running = book(plus)
    assert [(p.redis.key.split(":")[1], p.redis.fields["amountMinor"], p.redis.fields["final"]) for p in running] == [
        ("1m", "1250", "0"),
        ("1d", "1250", "0"),
    ]
    assert running[0].record is not None and running[0].record["payload"]["window"] == "MINUTE"
    after = book(minus)
    assert [p.redis.fields["amountMinor"] for p in after] == ["0", "0"]
    closing = dict(plus, delta=dict(plus["delta"], at=T0 + 120_000, order_id="O2"))
    finals = [p for p in book(closing) if p.redis.fields["final"] == "1"]
    assert [(p.record["payload"]["windowStart"], p.redis.fields["orders"]) for p in finals if p.record] == [
        (T0 - T0 % 60_000, "0")
    ]


def test_flash_sale_price_map_steps(stack: Stack, tmp_path: Path, flows: list[Dataflow]) -> None:
    flow = Dataflow(flash.NAME, local(FlashSalePriceMapSettings, stack, tmp_path))
    flows.append(flow)
    sources = flow.source(flash.STARTED, flash.parse_started).concat(flow.source(flash.ENDED, flash.parse_ended))
    steps = Steps(flow, sources.apply(flash.merge_step(3_600_000), stateful=True))
    started = {
        "saleId": "S1",
        "productId": "P1",
        "salePrice": {"amountMinor": 800, "currency": "USD"},
        "regularPrice": {"amountMinor": 1000, "currency": "USD"},
        "startsAt": T0,
        "endsAt": T0 + 600_000,
    }
    [entry] = steps.send(flash.STARTED, started)
    assert entry.redis.key == "flash_price:P1" and entry.redis.expire_at_ms == T0 + 600_000
    assert json.loads(entry.redis.fields["sales"])[0]["priceMinor"] == 800
    assert steps.send(flash.STARTED, started) == [None], "a duplicate changes nothing"
    ended = {"saleId": "S1", "productId": "P1", "endsAt": T0 + 600_000, "endedAt": T0 + 1_000, "endedBy": "ADMIN"}
    [gone] = steps.send(flash.ENDED, ended, T0 + 1_000)
    assert json.loads(gone.redis.fields["sales"]) == [] and gone.redis.version > entry.redis.version
    with pytest.raises(StopIteration):
        steps.raw(EventType("ecommerce.pricing.flash_sale.other.v1", "", "productId"), b"", "P1")
