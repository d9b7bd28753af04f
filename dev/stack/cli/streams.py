"""`shopstream streams ...`: the data engineers' commands over the dataflows (streams/)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dev.stack import StackError, StackSettings

streams_app = typer.Typer(help="Dataflows: list, run one, status (lag, state size).", no_args_is_help=True)
console = Console() if Console().is_terminal else Console(width=160)


@streams_app.command("list")
def list_dataflows() -> None:
    """The dataflows, what they read and write, and their settings' environment prefix."""
    from streams.catalog import DATAFLOWS

    table = Table("dataflow", "engine", "component", "reads", "writes", "settings", box=None)
    for spec in DATAFLOWS.values():
        table.add_row(
            spec.name,
            spec.settings().engine,
            spec.component(),
            "\n".join(e.topic for e in spec.inputs),
            "\n".join(spec.outputs),
            str(spec.settings.model_config.get("env_prefix", "")) + "*",
        )
    console.print(table)


@streams_app.command("run")
def run(
    name: str,
    engine: Annotated[
        str | None,
        typer.Option(help="quix | bytewax (default: the dataflow's setting SHOPSTREAM_<DATAFLOW>__ENGINE)"),
    ] = None,
) -> None:
    """Run one dataflow in the foreground until stopped (`python -m streams NAME`, as the stack runs each)."""
    from streams.__main__ import run as run_dataflow
    from streams.catalog import dataflow
    from streams.engines import ENGINES

    try:
        dataflow(name)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None
    if engine is not None and engine not in ENGINES:
        raise typer.BadParameter(f"no engine {engine!r}; known: {', '.join(ENGINES)}", param_hint="--engine")
    run_dataflow(name, engine)


@streams_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Per dataflow: its engine, running or not, records behind its inputs, local state size, dead letters."""
    from dev.stack.stack import Stack
    from streams.catalog import DATAFLOWS
    from streams.status import dataflow_status

    settings = StackSettings()
    try:
        components = {s.name: s for s in Stack(settings).status()}
    except StackError:
        components = {}
    from dev.stack.components.streams import engine_of

    rows: list[dict[str, Any]] = []
    for spec in DATAFLOWS.values():
        flow_settings = spec.settings()
        flow_settings.engine = engine_of(spec.name, settings)  # type: ignore[assignment]  # as the stack runs it
        row = dataflow_status(spec, flow_settings)
        component = components.get(spec.component())
        row["state"] = component.state if component else "unknown"
        rows.append(row)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("dataflow", "engine", "state", "lag", "state size", "dead letters", "lag by topic", box=None)
    for row in rows:
        table.add_row(
            row["dataflow"],
            row["engine"],
            row["state"],
            "?" if row["lag"] is None else str(row["lag"]),
            _size(row["stateBytes"]),
            "?" if row["deadLetters"] is None else str(row["deadLetters"]),
            "\n".join(f"{t}: {n}" for t, n in row["lagByTopic"].items()),
        )
    console.print(table)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
