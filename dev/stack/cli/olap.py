"""`shopstream olap ...`: the analysts' and auditors' commands over the OLAP service (which owns
the store): status, dbt, query, data-quality checks and reconciliation."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dev.stack import StackSettings

olap_app = typer.Typer(
    help="OLAP: the ClickHouse store, dbt marts, data quality, reconciliation.", no_args_is_help=True
)
console = Console() if Console().is_terminal else Console(width=160)
err = Console(stderr=True)


def _client() -> Any:
    from olap.client import OlapClient

    return OlapClient(StackSettings().olap.url)


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(2)


# exit codes: 0 ok, 1 a finding (a failed expectation, a difference, a failed build), 2 the command
# could not run, 3 the pipeline is not settled (the marts are behind the sources: nothing to judge)
UNSETTLED = 3
Settle = Annotated[
    bool,
    typer.Option(help="First wait until everything is landed, and build the marts (stop the writers first)."),
]


def _settled_or_exit(client: Any, settle: bool) -> None:
    from olap.reconcile import unsettled

    if settle:
        with console.status("waiting for the loader to land everything, then dbt build …"):
            client.settle(timeout=300)
            outcome = client.dbt("build")
        if not outcome["success"]:
            err.print("[red]dbt build failed[/red]; see `shopstream olap dbt build`")
            raise typer.Exit(1)
    problem = unsettled(client)
    if problem:
        err.print(f"[yellow]not settled:[/yellow] {problem}. Judge a settled pipeline: stop the writers "
                  "(`shopstream down simulator`), then run this again with --settle.")  # fmt: skip
        raise typer.Exit(UNSETTLED)


@olap_app.command("serve")
def serve() -> None:
    """Run the OLAP service in the foreground (the stack runs it as the `olap` component)."""
    from olap.service import main

    main()


@olap_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """What the loader has landed, its backlog and lag, and the last dbt outcome."""
    from olap.client import OlapError

    try:
        answer = _client().status()
    except OlapError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    loader = answer["loader"] or {}
    console.print(f"store {answer['store']} ({answer['target']}, ClickHouse {answer['engine']})")
    console.print(
        f"loader: {loader.get('records', 0)} records in {loader.get('batches', 0)} batches, "
        f"{loader.get('recordsPerSecond1m', 0)}/s over the last minute, max lag {loader.get('maxLagMs1m', 0)} ms, "
        f"{loader.get('deadLetters', 0)} dead letters, {'settled' if loader.get('settled') else 'catching up'}"
    )
    table = Table("raw table", "rows landed", box=None)
    for name, rows in sorted((loader.get("landed") or {}).items()):
        table.add_row(name, str(rows))
    console.print(table)
    if answer.get("dbt"):
        d = answer["dbt"]
        console.print(f"last dbt {' '.join(d['args'])}: {'ok' if d['success'] else 'FAILED'} in {d['seconds']}s")


@olap_app.command(
    "dbt", context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
)
def dbt(ctx: typer.Context) -> None:
    """Run dbt in the OLAP service, e.g. `shopstream olap dbt build`, `... dbt test --select marts`."""
    from olap.client import OlapError

    args = list(ctx.args)
    try:
        with console.status(f"dbt {' '.join(args)} …"):
            outcome = _client().dbt(*args)
    except OlapError as exc:
        raise _fail(exc) from None
    table = Table("node", "status", "seconds", "message", box=None)
    for node in outcome["nodes"]:
        style = "green" if node["status"] in ("success", "pass") else "red"
        table.add_row(
            node["node"], f"[{style}]{node['status']}[/{style}]", f"{node['seconds']:.2f}", node["message"] or ""
        )
    if outcome["nodes"]:
        console.print(table)
    if not outcome["success"]:
        for line in outcome["logTail"][-30:]:
            err.print(line, markup=False, highlight=False)
        err.print(f"[red]dbt {' '.join(args)} failed[/red] {outcome['error'] or ''}")
        raise typer.Exit(1)
    console.print(f"dbt {' '.join(args)}: ok in {outcome['seconds']:.1f}s")


@olap_app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="A read-only ClickHouse SQL query; '-' reads it from stdin.")],
    output: Annotated[str, typer.Option("--output", "-o", help="table, csv or json (one object per row).")] = "table",
) -> None:
    """Run an analyst's query against the store: a table, CSV or JSON lines."""
    from olap.client import OlapError

    text = sys.stdin.read() if sql == "-" else sql
    formats = {"csv": "CSVWithNames", "json": "JSONEachRow"}
    if output not in ("table", *formats):
        raise typer.BadParameter("--output must be table, csv or json")
    try:
        if output in formats:
            sys.stdout.buffer.write(_client().query_raw(text, formats[output]))
            return
        columns, rows = _client().query(text)
    except OlapError as exc:
        raise _fail(exc) from None
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    console.print(f"{len(rows)} rows", style="dim")


@olap_app.command("check")
def check(
    currencies: Annotated[str, typer.Option(help="The currency domain, comma separated.")] = "USD,EUR,GBP",
    settle: Settle = False,
) -> None:
    """The great-expectations suites on the marts; exits 1 when one fails (3: not settled). Data
    Docs are written."""
    from olap.checks import run_checks

    settings = StackSettings()
    client = _client()
    try:
        _settled_or_exit(client, settle)
        with console.status("validating the marts …"):
            report = run_checks(client, frozenset(currencies.split(",")), settings.home / "data" / "olap-gx")
    except typer.Exit:
        raise
    except Exception as exc:  # the service, GE, the data: the check could not run (not a finding)
        raise _fail(exc) from None
    table = Table("suite", "expectation", "column", "result", "observed", box=None)
    for o in report.outcomes:
        mark = "[green]pass[/green]" if o.success else "[red]FAIL[/red]"
        table.add_row(o.suite, o.expectation, o.column or "", mark, o.observed)
    console.print(table)
    if report.docs_index:
        console.print(f"Data Docs: {report.docs_index.as_uri()}")
    if not report.success:
        err.print(f"[red]{len(report.failures())} expectation(s) failed[/red]")
        raise typer.Exit(1)


@olap_app.command("reconcile")
def reconcile(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    settle: Settle = False,
) -> None:
    """Marts vs Postgres (orders, revenue) and vs the streaming revenue windows, to the cent;
    exits 1 on any difference (3: not settled)."""
    from olap.reconcile import reconcile as run

    settings = StackSettings()
    client = _client()
    try:
        _settled_or_exit(client, settle)
        report = run(client, settings.postgres.dsn)
    except typer.Exit:
        raise
    except Exception as exc:  # the service or Postgres unreachable: nothing was compared
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        table = Table("check", "key", "marts", "truth", "source of truth", box=None)
        for d in report.differences:
            table.add_row(d.check, d.key, str(d.marts), str(d.truth), d.truth_source)
        for line in report.summary():
            console.print(line)
        if report.differences:
            console.print(table)
    if report.differences:
        err.print(f"[red]{len(report.differences)} difference(s)[/red]")
        raise typer.Exit(1)
