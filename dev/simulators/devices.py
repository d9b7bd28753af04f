"""Simulated shelf sensors and restock scanners publishing stock deltas over MQTT, for the main
command (`shopstream ingest devices --rate 5`), the tests and the bench.

`DeviceGateway` is one MQTT connection for many devices (QoS 1, persistent session): while the
broker is away paho keeps what was published and sends it on reconnect, resending what was not
acknowledged (device-level QoS: a message may arrive twice, never zero times). Each device numbers
its messages (`seq`); the device ids carry a run id, so keys of two runs never collide."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ingest.payload import StockDelta, topic_for

BAD_PAYLOADS = (b"{not json", b'{"delta": 0}', b'{"delta": "two"}', b'{"delta": 2, "reason": "THEFT"}', b"\xff\xfe")


class DeviceGateway:
    def __init__(self, host: str, port: int, run_id: str | None = None, connect_timeout: float = 10.0) -> None:
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"shopstream-devices-{self.run_id}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)  # unbounded: a device buffers while the broker is away
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._seq: Counter[str] = Counter()
        self._acked: set[int] = set()
        self._lock = threading.Lock()
        self.published = 0
        self._connected = threading.Event()
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.on_disconnect = lambda *_: self._connected.clear()
        self.client.on_publish = self._on_publish
        self.client.connect_async(host, port, keepalive=15)
        self.client.loop_start()
        if not self._connected.wait(connect_timeout):
            self.close()
            raise ConnectionError(f"no MQTT broker at {host}:{port} within {connect_timeout}s")

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, _rc: object, _p: object) -> None:
        with self._lock:
            self._acked.add(mid)

    def device_id(self, device: str) -> str:
        return f"{device}-{self.run_id}"

    def publish(self, sku: str, delta: int, reason: str = "SENSOR", device: str = "dev-1") -> StockDelta:
        """One numbered delta from `device`, QoS 1 (queued while the broker is away)."""
        device_id = self.device_id(device)
        self._seq[device_id] += 1
        item = StockDelta(sku, delta, reason, device_id, self._seq[device_id])
        self.publish_raw(topic_for(sku), item.to_payload())
        return item

    def publish_raw(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: kept for the reconnect
            raise RuntimeError(f"publish to {topic}: {mqtt.error_string(info.rc)}")
        self.published += 1

    @property
    def unacknowledged(self) -> int:
        with self._lock:
            return self.published - len(self._acked)

    def wait_acknowledged(self, timeout: float) -> bool:
        """Every message published so far is acknowledged by the broker."""
        deadline = time.monotonic() + timeout
        while self.unacknowledged > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class DeviceTally:
    published: Counter[str] = field(default_factory=Counter)
    net: Counter[str] = field(default_factory=Counter)  # sku -> the sum of its deltas


def shelf_levels(api_url: str, products: int) -> dict[str, int]:
    """Active products' SKUs and available units, from the public catalog."""
    with httpx.Client(base_url=api_url, timeout=10) as http:
        items = http.get("/api/v1/products", params={"active": "true", "limit": products}).raise_for_status()
        out = {}
        for p in items.json()["items"]:
            stock = http.get(f"/api/v1/products/{p['id']}/stock").raise_for_status().json()
            out[str(p["sku"])] = int(stock["available"])
    return out


def simulate(
    gateway: DeviceGateway,
    levels: dict[str, int],
    rate: float,
    duration: float,
    devices: int = 5,
    bad: float = 0.0,
    seed: int | None = None,
    tick: Callable[[DeviceTally, float], Any] | None = None,
) -> DeviceTally:
    """Open-loop deltas at `rate`/s for `duration` s (0: until interrupted): shelf sensors take a
    few units, a restock scanner refills a shelf running low; `bad` is the share of malformed ones."""
    if not levels:
        raise ValueError("no products to sense: create some (e.g. `shopstream simulate`) first")
    rng = random.Random(seed)
    skus = sorted(levels)
    tally = DeviceTally()
    started = time.monotonic()
    sent = 0
    while duration <= 0 or time.monotonic() - started < duration:
        sent += 1
        pause = started + sent / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        index = rng.randrange(len(skus))
        sku = skus[index]
        if rng.random() < bad:
            gateway.publish_raw(topic_for(sku), rng.choice(BAD_PAYLOADS))
            tally.published["malformed"] += 1
        elif levels[sku] < 5:
            delta = rng.randint(10, 30)
            gateway.publish(sku, delta, "RESTOCK", device="scanner")
            levels[sku] += delta
            tally.published["RESTOCK"] += 1
            tally.net[sku] += delta
        else:
            delta = -rng.randint(1, min(3, levels[sku] - 1))
            gateway.publish(sku, delta, "SENSOR", device=f"shelf-{index % devices}")
            levels[sku] += delta
            tally.published["SENSOR"] += 1
            tally.net[sku] += delta
        if tick:
            tick(tally, time.monotonic() - started)
    return tally
