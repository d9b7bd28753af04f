"""`shopstream schemas ...`: the auditors' commands over `schemas/` and the schema registry."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dev.stack import StackError, StackSettings
from shopstream.contracts.catalog import render
from shopstream.contracts.checks import static_problems
from shopstream.contracts.compat import against_history, against_registry
from shopstream.contracts.compatibility import Level
from shopstream.contracts.files import SCHEMAS_DIR, SchemaFile, find_schema_file, load_schema_files
from shopstream.contracts.parsing import parse
from shopstream.contracts.topic_audit import audit_topic
from shopstream.serde.registry_client import RegistryClient, RegistryError

schemas_app = typer.Typer(help="Event contracts: check, register, diff, audit a topic, catalog.", no_args_is_help=True)
console = Console() if Console().is_terminal else Console(width=160)
CATALOG = SCHEMAS_DIR / "asyncapi.yaml"
Files = Annotated[
    list[Path] | None, typer.Argument(help="Schema files (default: all of schemas/).", show_default=False)
]


def _files(paths: list[Path] | None) -> list[SchemaFile]:
    if not paths:
        return load_schema_files()
    return [SchemaFile(p, p.read_text()) for p in paths]


def _registry() -> RegistryClient:
    return RegistryClient(StackSettings().registry.url)


@schemas_app.command("check")
def check(
    files: Files = None,
    offline: Annotated[bool, typer.Option(help="Skip the registry (static and git checks only).")] = False,
) -> None:
    """Every schema parses, is documented and fits the catalogue, and is compatible with the
    registry's latest version and the previous git version, under the subject's mode."""
    table = Table("schema", "level", "verdict", box=None)
    failed = 0
    with _registry() as registry:
        for schema in _files(files):
            problems = static_problems(schema)
            level = Level.BACKWARD
            if not problems:
                if not offline:
                    try:
                        level, found = against_registry(schema, registry)
                    except RegistryError as exc:
                        raise StackError(f"{exc} (use --offline to check without the registry)") from exc
                    problems += found
                problems += against_history(schema, level)
            failed += bool(problems)
            verdict = "[green]ok[/green]" if not problems else "[red]" + "\n".join(problems) + "[/red]"
            table.add_row(schema.path.name, level.value, verdict)
    console.print(table)
    if failed:
        console.print(f"[red]{failed} schema(s) failed[/red]")
        raise typer.Exit(1)


@schemas_app.command("register")
def register(files: Files = None) -> None:
    """Register every schema under `<topic>-value` (already registered ones keep their id)."""
    failed = 0
    with _registry() as registry:
        for schema in _files(files):
            try:
                schema_id = registry.register(schema.subject, schema.text)
                version = registry.lookup(schema.subject, schema.text)["version"]
                console.print(f"{schema.subject}: id {schema_id}, version {version}")
            except RegistryError as exc:
                if exc.status == 0:
                    raise StackError(str(exc)) from exc
                failed += 1
                console.print(f"[red]{schema.subject}: {exc}[/red]", highlight=False)
    if failed:
        raise typer.Exit(1)


@schemas_app.command("diff")
def diff(subject: str) -> None:
    """The registry's latest version of SUBJECT against the local file; exit 1 when they differ."""
    schema = find_schema_file(subject)
    with _registry() as registry:
        try:
            latest = registry.latest(schema.subject)
        except RegistryError as exc:
            raise StackError(f"{schema.subject}: {exc}") from exc
        problems = registry.check(schema.subject, schema.text, "latest")
    registered = json.dumps(json.loads(latest["schema"]), indent=2, sort_keys=True).splitlines()
    # both sides in the registry's canonical form, so only real differences show
    local = json.dumps(json.loads(parse(schema.text).canonical), indent=2, sort_keys=True).splitlines()
    lines = list(
        difflib.unified_diff(
            registered,
            local,
            f"registry {schema.subject} v{latest['version']}",
            f"local {schema.path.name}",
            lineterm="",
        )
    )
    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
        console.print(f"[{style}]{line}[/{style}]" if style else line, highlight=False, markup=bool(style))
    verdict = "compatible" if not problems else "INCOMPATIBLE: " + "; ".join(problems)
    console.print("identical" if not lines else f"differs; {verdict} with v{latest['version']}")
    if lines:
        raise typer.Exit(1)


@schemas_app.command("audit-topic")
def audit(
    topic: str,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Every retained record.")] = False,
    last: Annotated[int, typer.Option(help="Otherwise the last N records of each partition.")] = 1000,
) -> None:
    """Decode a live topic's records with their registered schemas; list every one that fails
    (partition, offset, reason) and exit 1 if any does."""
    settings = StackSettings()
    columns = (TextColumn("auditing {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with _registry() as registry, Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(topic, total=None)
        report = audit_topic(
            settings.kafka.bootstrap,
            registry,
            topic,
            from_beginning=from_beginning,
            last=last,
            on_progress=lambda n, total: progress.update(task, completed=n, total=total),
        )
    if report.bad:
        table = Table("partition", "offset", "reason", box=None)
        for bad in report.bad:
            table.add_row(str(bad.partition), str(bad.offset), bad.reason)
        console.print(table)
    console.print(f"{topic}: {report.checked} records checked, {len(report.bad)} bad")
    if report.bad:
        raise typer.Exit(1)


@schemas_app.command("catalog")
def catalog(check: Annotated[bool, typer.Option("--check", help="Fail if the file is out of date.")] = False) -> None:
    """Write the AsyncAPI 3 event catalog, schemas/asyncapi.yaml, from the schema files."""
    text = render(load_schema_files())
    if check:
        if not CATALOG.exists() or CATALOG.read_text() != text:
            raise StackError(f"{CATALOG} is out of date: run `shopstream schemas catalog`")
        console.print(f"{CATALOG.name} is up to date")
        return
    CATALOG.write_text(text)
    console.print(f"wrote {CATALOG}")
