"""`shopstream`: the command line of the platform (Typer + rich)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dev.stack import StackError, StackSettings
from dev.stack.stack import ComponentStatus, Stack

app = typer.Typer(
    help="shopstream: stream-processing-first e-commerce data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
connectors_app = typer.Typer(help="Kafka Connect connectors (Debezium).", no_args_is_help=True)
app.add_typer(connectors_app, name="connectors")
db_app = typer.Typer(help="The OLTP database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations (serving_api/migrations/); `up` does this too."""
    from dev.stack.migrations import apply_migrations

    applied = apply_migrations(StackSettings())
    console.print(f"applied {', '.join(applied)}" if applied else "up to date")


@db_app.command("migrate-stores")
def db_migrate_stores() -> None:
    """Apply the serving stores' schemas: CQL migrations (migrations/cassandra/) and the OpenSearch
    indices behind their aliases (migrations/opensearch/); `up` does this too."""
    from dev.stack.cassandra_migrations import apply_cql_migrations
    from dev.stack.search_indices import apply_indices

    settings = StackSettings()
    applied = apply_cql_migrations(settings)
    console.print(f"cassandra: applied {', '.join(applied)}" if applied else "cassandra: up to date")
    changes = apply_indices(settings)
    console.print(f"opensearch: {', '.join(changes)}" if changes else "opensearch: up to date")


def _add_schemas_app() -> None:
    from dev.stack.cli.schemas import schemas_app

    app.add_typer(schemas_app, name="schemas")


def _add_streams_app() -> None:
    from dev.stack.cli.replay import replay_app
    from dev.stack.cli.streams import streams_app

    app.add_typer(streams_app, name="streams")
    app.add_typer(replay_app, name="replay")


def _add_olap_app() -> None:
    from dev.stack.cli.olap import olap_app

    app.add_typer(olap_app, name="olap")


def _add_ingest_app() -> None:
    from dev.stack.cli.ingest import ingest_app

    app.add_typer(ingest_app, name="ingest")


_add_schemas_app()
_add_streams_app()
_add_olap_app()
_add_ingest_app()
# piped output (CI logs, `| grep`) is not wrapped to 80 columns, or the status table loses columns
console = Console() if Console().is_terminal else Console(width=160)
Names = Annotated[list[str] | None, typer.Argument(help="Components (default: all).", show_default=False)]


@app.command()
def setup(
    flink: Annotated[bool, typer.Option(help="Also build the PyFlink environment.")] = False,
    browser: Annotated[bool, typer.Option(help="Also install Chromium (the dashboard's browser tests).")] = False,
) -> None:
    """Install what the stack runs from: Debian packages, Kafka/Debezium/Cassandra/OpenSearch jars
    (Maven) and the OpenSearch launcher (javac), OPA (go install), PyFlink env."""
    from dev.stack import installer

    settings = StackSettings()
    stack = Stack(settings)
    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task("checking prerequisites", total=None)

        def report(message: str) -> None:
            progress.update(task, description=message)
            console.log(message)

        java = installer.install_all(settings, stack.components, stack.paths, report, flink=flink, browser=browser)
    console.print(f"[green]setup done[/green] in {time.monotonic() - started:.1f}s ({java or 'no Java needed'})")


@app.command()
def up(names: Names = None, wait: Annotated[bool, typer.Option(help="Wait until healthy.")] = True) -> None:
    """Start the stack (or the named components) and wait until every one is healthy."""
    import os

    from dev.stack.variables import warning

    stack = Stack(StackSettings())
    if (unread := warning(os.environ)) is not None:
        console.print(f"[yellow]{unread}[/yellow]")
    started = time.monotonic()
    statuses = stack.up(names or [], wait=False)  # checks (ports, install) fail here, before any table
    if wait:
        with Live(_table(statuses), console=console, refresh_per_second=4, transient=False) as live:
            statuses = stack.wait_healthy(names or [], on_status=lambda s: live.update(_table(s)), run_ready=True)
            live.update(_table(statuses))
        console.print()
        for message in stack.ready_messages:
            console.print(message)
    state = "healthy" if all(s.healthy for s in statuses) else "started"
    console.print(f"[green]{len(statuses)} components {state}[/green] in {time.monotonic() - started:.1f}s")


@app.command()
def down(names: Names = None) -> None:
    """Stop the named components, or the whole stack and its process manager."""
    stack = Stack(StackSettings())
    stack.down(names or [])
    console.print("[green]stopped[/green] " + (", ".join(names) if names else "the stack"))


@app.command()
def simulate(
    rate: Annotated[float, typer.Option(help="Storefront actions per second.")] = 5.0,
    duration: Annotated[float, typer.Option(help="Seconds; 0 runs until stopped.")] = 60.0,
    users: int = 50,
    products: int = 20,
    seed: int | None = None,
) -> None:
    """A storefront workload through the public API (browse, carts, orders, pay, cancel, fulfil)."""
    import asyncio

    from dev.simulators.settings import StorefrontSettings
    from dev.simulators.storefront import Tally, run

    url = StorefrontSettings().or_the_stacks().api.url
    with _progress() as progress:
        task = progress.add_task("simulating", total=duration or None)

        logged = [0.0]

        def tick(tally: Tally, elapsed: float) -> None:
            summary = f"{sum(tally.calls.values())} calls, {tally.orders} orders, {sum(tally.errors.values())} errors"
            progress.update(task, completed=elapsed, description=summary)
            if not console.is_terminal and elapsed - logged[0] >= 10:  # a log line now and then when unattended
                logged[0] = elapsed
                console.log(f"simulator: {elapsed:.0f}s, {summary}")

        tally = asyncio.run(run(url, rate, duration, users, products, seed, tick))
    table = Table("call", "count", box=None)
    for name, count in sorted(tally.calls.items()):
        table.add_row(name, str(count))
    console.print(table)
    console.print(f"{tally.orders} orders placed; {sum(tally.errors.values())} server errors")
    if tally.errors:
        raise typer.Exit(1)


@app.command()
def token(
    user: str,
    role: Annotated[
        list[str], typer.Option("--role", help="CUSTOMER, ADMIN, STOCK_KEEPER, MERCHANDISER or WAREHOUSE")
    ] = ["CUSTOMER"],  # noqa: B006
    ttl: int = 3600,
    file: Annotated[
        Path | None,
        typer.Option(help="Write a 180-day token to this file (mode 600) for a service, unless the one there is good"),
    ] = None,
) -> None:
    """A dev JWT (HS256, the API's configured secret) for curl, scripts and services' token files."""
    from dev.stack.identity import LocalIdentity

    identity = LocalIdentity()
    if file is None:
        print(identity.token(user, role, ttl))
    elif identity.ensure_token_file(file, user, role):
        console.print(f"wrote a token for {user} ({', '.join(role)}) to {file}")
    else:
        console.print(f"{file} still holds a good token for {user}")


@app.command()
def clean(yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Stop the stack and delete everything it wrote: data, logs, jars (`SHOPSTREAM_HOME`)."""
    stack = Stack(StackSettings())
    if not yes and not typer.confirm(f"delete {stack.paths.home} and all its data?"):
        raise typer.Exit(1)
    for folder in stack.clean():
        console.print(f"removed {folder}")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Each component: up/down, version, ports, pid, uptime, log path. Exit 1 when any is down
    (an optional component, like the simulator, only counts when it runs)."""
    stack = Stack(StackSettings())
    statuses = stack.status(with_optional=True)
    optional = {c.name for c in stack.components if c.optional}
    failing = [s for s in statuses if not s.healthy and not (s.name in optional and s.state == "down")]
    if as_json:
        print(json.dumps([_as_dict(s) for s in statuses], indent=2))
    else:
        console.print(_table(statuses))
    raise typer.Exit(1 if failing else 0)


@app.command()
def logs(
    name: str,
    lines: Annotated[int, typer.Option("-n", help="Lines to show.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
) -> None:
    """Show (or follow) one component's log."""
    stack = Stack(StackSettings())
    path = stack.paths.log(name) if name == "supervisord" else stack.paths.log(stack.select([name])[0].name)
    if not path.exists():
        raise StackError(f"no log yet at {path}; has `shopstream up` started {name}?")
    console.print(f"[dim]{path}[/dim]")
    subprocess.run(["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)], check=False)


@connectors_app.command("apply")
def connectors_apply(files: list[Path], timeout: float = 60.0) -> None:
    """Create or update connectors from config files; unchanged ones are left alone."""
    from connectors import ConnectClient, load_config

    settings = StackSettings()
    with ConnectClient(settings.connect.url) as client:
        for path in files:
            config = load_config(path, settings.connector_values())
            result = client.apply(config)
            client.wait_running(config.name, timeout=timeout)
            console.print(f"{config.name}: {result.value}, RUNNING")


@connectors_app.command("list")
def connectors_list() -> None:
    """Connectors on the worker, with their state."""
    from connectors import ConnectClient

    with ConnectClient(StackSettings().connect.url) as client:
        for name in client.names():
            state = client.status(name) or {}
            tasks = ", ".join(f"{t['id']}:{t['state']}" for t in state.get("tasks", []))
            console.print(f"{name}: {state.get('connector', {}).get('state', '?')} [{tasks}]")


@connectors_app.command("delete")
def connectors_delete(name: str) -> None:
    """Delete a connector (its replication slot stays in Postgres)."""
    from connectors import ConnectClient

    with ConnectClient(StackSettings().connect.url) as client:
        console.print(f"{name}: {'deleted' if client.delete(name) else 'not found'}")


def _table(statuses: list[ComponentStatus]) -> Table:
    table = Table(box=None)
    table.add_column("component", no_wrap=True)
    table.add_column("state", overflow="fold", min_width=8, ratio=1)
    for column in ("version", "ports", "pid", "uptime", "log"):
        table.add_column(column, no_wrap=True)
    colors = {"up": "green", "starting": "yellow", "down": "red"}
    for s in statuses:
        state = s.state if s.healthy else f"{s.state} ({s.detail})"
        table.add_row(
            s.name,
            f"[{colors[s.state]}]{state}[/]",
            s.version,
            ",".join(map(str, s.ports)),
            str(s.pid or "-"),
            f"{s.uptime_seconds:.0f}s" if s.uptime_seconds is not None else "-",
            _short(s.log),
        )
    return table


def _short(path: Path) -> str:
    """Paths under the current folder are shown relative to it (tables stay readable)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _as_dict(s: ComponentStatus) -> dict[str, object]:
    return {
        "name": s.name,
        "state": s.state,
        "detail": s.detail,
        "version": s.version,
        "ports": list(s.ports),
        "pid": s.pid,
        "uptime_seconds": s.uptime_seconds,
        "log": str(s.log),
    }


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def main() -> None:
    """Entry point: a StackError (or a connector error) is one red line, never a traceback."""
    from connectors.client import ConnectError, ConnectorFailed

    try:
        app()
    except ConnectorFailed as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        console.print(exc.trace, highlight=False, markup=False)
        sys.exit(1)
    except (StackError, ConnectError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
