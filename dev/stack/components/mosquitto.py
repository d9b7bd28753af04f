"""Mosquitto from Debian's package: the MQTT broker of the IoT stock ingest, with persistent
sessions (QoS 1 messages of an absent subscriber survive a broker restart)."""

from __future__ import annotations

import getpass
import threading
from pathlib import Path

from dev.stack.component import AptPackage, Component, Port, ProbeFailed
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from dev.stack.templates import render

MOSQUITTO = Path("/usr/sbin/mosquitto")
VERSION_TOPIC = "$SYS/broker/version"  # retained by the broker: "mosquitto version 2.0.11"


def broker_version(host: str, port: int, timeout: float = 2.0) -> str:
    """Connect (MQTT 3.1.1, clean session) and read the broker's retained version message."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    seen: list[str] = []
    got = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    client.on_connect = lambda c, *_: c.subscribe(VERSION_TOPIC, qos=0)

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        seen.append(msg.payload.decode(errors="replace"))
        got.set()

    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=5)
    except OSError as exc:
        raise ProbeFailed(f"MQTT connect to {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        if not got.wait(timeout):
            raise ProbeFailed(f"no {VERSION_TOPIC} from {host}:{port} within {timeout}s")
    finally:
        client.disconnect()
        client.loop_stop()
    return seen[0].removeprefix("mosquitto version ").strip()


def component(settings: StackSettings, paths: StackPaths) -> Component:
    cfg = settings.mosquitto
    data = paths.data("mosquitto")
    conf = paths.conf / "mosquitto.conf"

    def prepare() -> None:
        data.mkdir(parents=True, exist_ok=True)
        render(
            settings.repo / "infra" / "conf" / "mosquitto.conf",
            conf,
            {"host": cfg.host, "port": cfg.port, "persistence_location": data, "user": getpass.getuser()},
        )

    return Component(
        name="mosquitto",
        summary="Mosquitto MQTT broker (IoT stock deltas, persistent sessions)",
        ports=[Port(cfg.port, settings.env_name("mosquitto", "port"))],
        command=[str(MOSQUITTO), "-c", str(conf)],
        probe=lambda: broker_version(cfg.host, cfg.port),
        prepare=prepare,
        apt=[AptPackage("mosquitto", MOSQUITTO)],
        config_files=[conf],
    )
