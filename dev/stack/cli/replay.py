"""`shopstream replay ...`: rebuild a projection from the log beside the live one, prove parity
at the same log position, promote it atomically (`streams.replay`). Every command takes `--json`
for scripts; exit 0 on success, 1 on an error said in one line, 2 when `verify` finds differences."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

replay_app = typer.Typer(
    help="Replay: rebuild a projection from the log into a shadow beside the live one, verify parity, promote.",
    no_args_is_help=True,
)
console = Console(stderr=True) if Console().is_terminal else Console(stderr=True, width=160)
out = Console() if Console().is_terminal else Console(width=160)
log = logging.getLogger("shopstream.replay")

Json = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
Generation = Annotated[int | None, typer.Option("--generation", "-g", help="Default: the newest one that fits.")]
LiveStopped = Annotated[
    bool,
    typer.Option(
        "--live-stopped",
        help="The live dataflow is stopped: use the positions its stores recorded instead of pausing it.",
    ),
]
Wait = Annotated[float, typer.Option(help="Seconds to wait for the live dataflow to reach the shadow and pause.")]


def _known() -> list[str]:
    """The projections, then the OLAP landing (rebuilt by the OLAP service: `olap.rebuild`)."""
    from olap.rebuild import NAME
    from streams.catalog import DATAFLOWS

    return [*DATAFLOWS, NAME]


def _names(name: str | None, every: bool) -> list[str]:
    if every:
        return _known()
    if name is None:
        raise typer.BadParameter("name a projection, or --all")
    if name not in _known():
        raise typer.BadParameter(f"no projection {name!r}; known: {', '.join(_known())}")
    return [name]


def _since(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 instant: {value!r}", param_hint="--since") from None
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


@contextmanager
def _fails() -> Iterator[None]:
    """Errors the operator can act on, in one line (exit 1); never a traceback."""
    from streams.replay.service import ReplayError

    try:
        yield
    except ReplayError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None


@contextmanager
def _bar(what: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    if quiet:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(what, total=None, rate="")

        def update(done: int, total: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0
            rate = f"{done / elapsed:,.0f} rec/s" if elapsed > 0.5 else ""
            bar.update(task, completed=done, total=total or None, rate=rate)

        yield update


def _logging(correlation: str) -> None:
    """Log lines carry the command's correlation id (`replay-<hex>`)."""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s %(name)s [{correlation}] %(message)s", force=True
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("cassandra").setLevel(logging.ERROR)  # protocol downgrades, batch-size advice


def _replays(name: str) -> Any:
    from olap.rebuild import NAME

    if name == NAME:
        from dev.stack.cli.olap_replay import OlapReplays

        return OlapReplays()
    from streams.replay.service import Replays

    return Replays(name)


def _emit(as_json: bool, data: Any) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))


@replay_app.command("plan")
def plan(
    name: Annotated[str | None, typer.Argument(help="The projection (a dataflow's name).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every projection.")] = False,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="From the start of the retained log (default).")
    ] = True,
    since: Annotated[str | None, typer.Option(help="From the first record at or after this ISO 8601 instant.")] = None,
    as_json: Json = False,
) -> None:
    """What a run would read (topics, partitions, offsets, records), into which shadow target, and
    how long it should take at the rate this process measures on a sample of the log."""
    _logging(f"replay-{uuid.uuid4().hex[:8]}")
    plans = []
    with _fails():
        for n in _names(name, every):
            plans.append(_replays(n).plan(_since(since)))
    if as_json:
        _emit(True, plans if every else plans[0])
        return
    for p in plans:
        table = Table(
            "partition", "from", "to", "records", box=None, title=f"{p['projection']} → generation {p['generation']}"
        )
        for part in p["partitions"]:
            table.add_row(part["partition"], str(part["from"]), str(part["to"]), f"{part['records']:,}")
        out.print(table)
        out.print(f"  {p['records']:,} records from {p['from']}; shadow: {json.dumps(p['targets'])}")
        out.print(f"  not made again: {', '.join(p['withheld']) or 'nothing'}")
        seeds = ", ".join(p["seedTables"]) or "none (the log only)"
        out.print(f"  --reseed re-reads from Postgres: {seeds}")
        if p["ratePerSecond"]:
            out.print(f"  measured {p['ratePerSecond']:,} records/s in this process: about {p['etaSeconds']} s")


@replay_app.command("run")
def run(
    name: Annotated[str | None, typer.Argument(help="The projection.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every projection, one after another.")] = False,
    since: Annotated[str | None, typer.Option(help="From the first record at or after this ISO 8601 instant.")] = None,
    reseed: Annotated[
        bool,
        typer.Option(
            "--reseed",
            help="When the log is not enough (retention, a new projection): first re-read the projection's"
            " seed tables from Postgres (Debezium's incremental snapshot) and step their rows before the log.",
        ),
    ] = False,
    max_rate: Annotated[
        int | None,
        typer.Option(
            "--max-rate", min=1, help="olap_landing: land at most this many records/s (beside a busy live loader)."
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Rebuild into a new shadow generation up to the log's end as of now (or continue the
    unfinished one: a run killed at any point continues from its last checkpoint)."""
    from olap.rebuild import NAME

    _logging(f"replay-{uuid.uuid4().hex[:8]}")
    results = []
    with _fails():
        for n in _names(name, every):
            replays = _replays(n)
            if reseed and every and not replays.projection.seeds:
                continue  # --all --reseed: the projections that have seed tables
            with _bar(f"{n}", as_json) as progress:

                def snapshot(state: str, n: str = n) -> None:
                    if not as_json:
                        console.print(f"{n}: incremental snapshot {state}")

                if max_rate is not None and n != NAME:
                    raise typer.BadParameter(f"--max-rate is for {NAME}", param_hint="--max-rate")
                extra = {"max_rate": max_rate} if n == NAME else {}
                record = replays.run(_since(since), progress, reseed, snapshot, **extra)
            results.append({"projection": n, "generation": record.generation, "status": record.status, **record.stats})
            if not as_json:
                s = record.stats
                rate = s["read"] / s["wallSeconds"] if s.get("wallSeconds") else 0
                if record.seed_signal:
                    out.print(f"{n}: {s.get('seeded', 0):,} rows re-seeded from Postgres ({record.seed_signal})")
                out.print(
                    f"{n}: generation {record.generation} built: {s['read']:,} records ({rate:,.0f}/s),"
                    f" {s['writes']:,} writes, {s['withheld']:,} side effects withheld, {s['deadLetters']} dead letters"
                )
    _emit(as_json, results if every else results[0])


@replay_app.command("verify")
def verify(
    name: Annotated[str | None, typer.Argument(help="The projection.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every projection with a built generation.")] = False,
    generation: Generation = None,
    live_stopped: LiveStopped = False,
    wait: Wait = 60.0,
    limit: Annotated[int, typer.Option(help="Differences listed per store.")] = 20,
    as_json: Json = False,
) -> None:
    """Parity between the shadow and the live projection at the same offset vector: digests per
    shard, then every differing key with both values. Exit 0 only at 100% parity (2 otherwise)."""
    _logging(f"replay-{uuid.uuid4().hex[:8]}")
    results = []
    with _fails():
        for n in _names(name, every):
            with _bar(f"{n}: catching up", as_json) as progress:
                results.append(_replays(n).verify(generation, live_stopped, wait, progress))
    _emit(as_json, results if every else results[0])
    if not as_json:
        for r in results:
            verdict = "[green]100% parity[/green]" if r["parity"] else "[red]differs[/red]"
            out.print(f"{r['projection']} generation {r['generation']}: {verdict} ({r['seconds']} s)")
            if r["liveMoved"]:
                out.print(
                    "  the live dataflow moved while it was compared: stop it (--live-stopped) or let it be paused"
                )
            for store in r["stores"]:
                out.print(
                    f"  {store['store']}: {store['keys']:,} keys, {store['equalShards']}/{store['shards']} shards"
                    f" equal, {store['differing']} differing"
                )
                for d in store["differences"][:limit]:
                    out.print(f"    {d['key']}")
                    out.print(f"      live:   {json.dumps(d['live'])}")
                    out.print(f"      shadow: {json.dumps(d['shadow'])}")
    if not all(r["parity"] for r in results):
        raise typer.Exit(2)


@replay_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="The projection.")],
    generation: Generation = None,
    accept_differences: Annotated[
        bool, typer.Option(help="Promote a generation that was not verified or differs (a repair).")
    ] = False,
    live_stopped: LiveStopped = False,
    wait: Wait = 60.0,
    as_json: Json = False,
) -> None:
    """Swap the shadow in atomically per store (Redis keys in one script, Cassandra's read_models
    pointer, the OpenSearch alias); the live dataflow continues from the promoted positions. The
    old generation stays until `drop`. A promotion cut off (killed, a store down) is finished by
    running it again."""
    _logging(f"replay-{uuid.uuid4().hex[:8]}")
    with _fails():
        _names(name, False)
        with _bar(f"{name}: catching up", as_json) as progress:
            record = _replays(name).promote(generation, accept_differences, live_stopped, wait, progress)
    if as_json:
        _emit(
            True,
            {"projection": name, "generation": record.generation, "status": record.status, "previous": record.previous},
        )
    else:
        out.print(
            f"{name}: generation {record.generation} is live ({record.stats.get('promoteSeconds')} s);"
            f" retired: {json.dumps(record.previous)}"
        )


@replay_app.command("drop")
def drop(
    name: Annotated[str, typer.Argument(help="The projection.")],
    generation: Annotated[int, typer.Option("--generation", "-g", help="The generation to delete (not the live one).")],
    as_json: Json = False,
) -> None:
    """Delete a generation that is not live: its Redis keys, Cassandra tables, OpenSearch index."""
    _logging(f"replay-{uuid.uuid4().hex[:8]}")
    with _fails():
        _names(name, False)
        dropped = _replays(name).drop(generation)
    if as_json:
        _emit(True, dropped)
    else:
        out.print(f"{name}: dropped {json.dumps(dropped)}")


@replay_app.command("status")
def status(
    name: Annotated[str | None, typer.Argument(help="The projection (default: all).")] = None,
    as_json: Json = False,
) -> None:
    """Per projection: the live generation per store, and each replay's status (running, built,
    verified, differs, promoting — cut off mid-promotion: promote again —, promoted, retired) with
    its lag behind the log."""
    from olap.client import OlapUnavailable
    from olap.rebuild import NAME

    rows = []
    with _fails():
        for n in [name] if name else _known():
            _names(n, False)
            try:
                rows.append(_replays(n).status())
            except OlapUnavailable as exc:  # every projection's status but the landing's, which says why
                if name is not None or n != NAME:
                    raise
                rows.append({"projection": n, "live": None, "replays": [], "error": str(exc)})
    if as_json:
        _emit(True, rows if name is None else rows[0])
        return
    table = Table("projection", "live", "generation", "status", "records", "lag", "parity", box=None)
    for row in rows:
        live = json.dumps(row.get("live"))
        if not row["replays"]:
            table.add_row(row["projection"], live, "-", "-", "", "", "")
        for r in row["replays"]:
            table.add_row(
                row["projection"],
                live,
                str(r["generation"]),
                r["status"],
                f"{r['records']:,}",
                "?" if r["lag"] is None else f"{r['lag']:,}",
                "" if r["parity"] is None else ("100%" if r["parity"] else "differs"),
            )
    out.print(table)


@replay_app.command("explain")
def explain(
    name: Annotated[str, typer.Argument(help="The projection.")],
    key: Annotated[str, typer.Argument(help="The key its events are keyed by (a productId, an orderId).")],
    as_json: Json = False,
) -> None:
    """For auditors: the events in the log that built KEY's value (topic, partition, offset, event
    id, type, occurredAt), and the value re-folded from them next to the stored one."""
    _logging(f"replay-{uuid.uuid4().hex[:8]}")
    with _fails():
        _names(name, False)
        found = _replays(name).explain(key)
    if as_json:
        _emit(True, found)
        return
    table = Table("topic", "partition", "offset", "event id", "type", "occurred at", box=None, title=f"{name} {key}")
    for e in found["events"]:
        at = datetime.fromtimestamp(e["occurredAt"] / 1000, UTC).isoformat() if "occurredAt" in e else ""
        table.add_row(
            e["topic"],
            str(e["partition"]),
            str(e["offset"]),
            e.get("eventId", e.get("deadLetter", "")),
            e.get("eventType", ""),
            at,
        )
    out.print(table)
    for v in found["values"]:
        mark = "[green]equal[/green]" if v["equal"] else "[red]differs[/red]"
        out.print(
            f"{v['slot']}: {mark}\n  re-folded: {json.dumps(v['refolded'])}\n  stored:    {json.dumps(v['stored'])}"
        )
    for f in found["forwarded"]:
        out.print(f"forwarded to {f['key']}: {json.dumps(f['value'])}")
    if found["values"] and not found["equal"]:
        raise typer.Exit(2)
