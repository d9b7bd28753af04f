"""`shopstream ingest ...`: the IoT stock ingest (MQTT → stock adjustments) and its device
simulator."""

from __future__ import annotations

import json
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

ingest_app = typer.Typer(help="IoT stock ingest over MQTT: run it, simulate devices, status.", no_args_is_help=True)
console = Console() if Console().is_terminal else Console(width=160)


@ingest_app.command("run")
def run() -> None:
    """Run the ingest in the foreground until stopped (the stack runs it this way, `iot-ingest`)."""
    from ingest.__main__ import main

    main()


@ingest_app.command("devices")
def devices(
    rate: Annotated[float, typer.Option(help="Deltas per second (all devices together).")] = 5.0,
    duration: Annotated[float, typer.Option(help="Seconds; 0 runs until stopped.")] = 60.0,
    products: Annotated[int, typer.Option(help="How many of the catalog's active products the devices watch.")] = 20,
    shelves: Annotated[int, typer.Option(help="Shelf sensors (device ids), besides one restock scanner.")] = 5,
    bad: Annotated[float, typer.Option(help="Share of malformed payloads (they go to the dead-letter topic).")] = 0.0,
    seed: int | None = None,
) -> None:
    """Simulated shelf sensors and a restock scanner publishing deltas (QoS 1) for existing SKUs."""
    from dev.simulators.devices import DeviceGateway, DeviceTally, shelf_levels, simulate
    from dev.simulators.settings import DevicesSettings

    settings = DevicesSettings().or_the_stacks()
    levels = shelf_levels(settings.api.url, products)
    gateway = DeviceGateway(settings.mqtt.host, settings.mqtt.port)
    logged = [0.0]

    def tick(tally: DeviceTally, elapsed: float) -> None:
        if elapsed - logged[0] >= 10:
            logged[0] = elapsed
            console.log(f"devices: {elapsed:.0f}s, {sum(tally.published.values())} published")

    try:
        tally = simulate(gateway, levels, rate, duration, shelves, bad, seed, tick)
    except KeyboardInterrupt:
        tally = None
    finally:
        acked = gateway.wait_acknowledged(30)
        gateway.close()
    if tally is not None:
        table = Table("kind", "published", box=None)
        for kind, count in sorted(tally.published.items()):
            table.add_row(kind, str(count))
        console.print(table)
    if not acked:
        console.print(f"[red]{gateway.unacknowledged} message(s) not acknowledged by the broker[/red]")
        raise typer.Exit(1)


@ingest_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The running ingest's MQTT session and counters (applied, replayed, dead letters by reason)."""
    from ingest.settings import IotIngestSettings

    try:
        state = httpx.get(IotIngestSettings().url + "/health", timeout=3).json()
    except httpx.HTTPError as exc:
        console.print(f"[red]the ingest does not answer[/red]: {exc} (`shopstream up iot-ingest`)")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(state, indent=2))
        return
    table = Table("", "", box=None)
    for key, value in state.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)
    raise typer.Exit(0 if state.get("connected") else 1)
