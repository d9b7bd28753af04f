"""dbt invocations inside the OLAP service (the process that owns the store), one at a time.

dbt runs in-process through `dbtRunner`, with the `driver: chdb` shim installed, so its models are
built by the same embedded engine the loader lands into; on the `server` target it talks HTTP to
the ClickHouse server like any dbt user would."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from olap import dbt_chdb
from olap.settings import OlapSettings

log = logging.getLogger("shopstream.olap.dbt")

# the dbt commands the service runs, and their flags: the project, profile, target and paths are
# the service's (and `show --inline`, `--vars`, `docs serve` would run SQL or servers of a caller's)
COMMANDS = {
    ("build",): 1, ("run",): 1, ("test",): 1, ("compile",): 1, ("ls",): 1, ("list",): 1, ("parse",): 1,
    ("docs", "generate"): 2, ("source", "freshness"): 2,
}  # fmt: skip
FLAGS_WITH_VALUES = frozenset({"-s", "--select", "--exclude", "--selector", "--resource-type", "--output"})
FLAGS = frozenset({"--full-refresh", "--fail-fast", "-x", "--empty"}) | FLAGS_WITH_VALUES


def check_args(args: list[str]) -> None:
    """BadInvocation unless `args` is one of COMMANDS with FLAGS only."""
    command = next((c for c in COMMANDS if tuple(args[: len(c)]) == c), None)
    if command is None:
        known = ", ".join(" ".join(c) for c in COMMANDS)
        raise BadInvocation(f"dbt command must be one of {known}; got {' '.join(args[:2]) or 'nothing'}")
    rest = args[len(command) :]
    takes_value = False
    for arg in rest:
        if takes_value and not arg.startswith("-"):
            continue  # a value of the flag before (selectors take several)
        flag = arg.split("=", 1)[0]
        if flag not in FLAGS:
            raise BadInvocation(
                f"dbt flag {flag!r} is not accepted here (the service chooses the project, profile, target and "
                f"paths); allowed: {', '.join(sorted(FLAGS))}"
            )
        takes_value = flag in FLAGS_WITH_VALUES and "=" not in arg


class BuildBusy(RuntimeError):
    """Another dbt invocation is running."""


class BadInvocation(ValueError):
    """Arguments the service will not hand to dbt."""


@dataclass(frozen=True)
class NodeOutcome:
    node: str
    status: str
    seconds: float
    message: str | None
    failures: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node, "status": self.status, "seconds": round(self.seconds, 3),
            "message": self.message, "failures": self.failures,
        }  # fmt: skip


@dataclass(frozen=True)
class DbtOutcome:
    args: tuple[str, ...]
    success: bool
    seconds: float
    started_at: float
    nodes: tuple[NodeOutcome, ...]
    error: str | None
    log_tail: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "args": list(self.args),
            "success": self.success,
            "seconds": round(self.seconds, 3),
            "startedAt": self.started_at,
            "nodes": [n.as_dict() for n in self.nodes],
            "error": self.error,
            "logTail": list(self.log_tail),
        }


def export_profile_values(settings: OlapSettings) -> None:
    """profiles.yml reads the store's location from the variables the service's settings come
    from; called once at start, before any thread exists (the environment is process-wide)."""
    os.environ["SHOPSTREAM_OLAP__PATH"] = str(settings.path)
    os.environ["SHOPSTREAM_OLAP__CLICKHOUSE__HOST"] = settings.clickhouse.host
    os.environ["SHOPSTREAM_OLAP__CLICKHOUSE__PORT"] = str(settings.clickhouse.port)
    os.environ["SHOPSTREAM_OLAP__CLICKHOUSE__USER"] = settings.clickhouse.user
    os.environ["SHOPSTREAM_OLAP__CLICKHOUSE__PASSWORD"] = settings.clickhouse.password.get_secret_value()


@dataclass
class DbtRunner:
    settings: OlapSettings
    last: DbtOutcome | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, args: list[str], wait: float = 0.0) -> DbtOutcome:
        """Run one dbt command (e.g. ["build"], ["test", "--select", "marts"]) once the one running
        (if any) has finished; BuildBusy if that takes more than `wait` seconds."""
        check_args(args)
        acquired = self._lock.acquire(timeout=wait) if wait > 0 else self._lock.acquire(blocking=False)
        if not acquired:
            raise BuildBusy("a dbt invocation is running; try again when it has finished")
        try:
            self.last = self._invoke(args)
            return self.last
        finally:
            self._lock.release()

    def _invoke(self, args: list[str]) -> DbtOutcome:
        from dbt.cli.main import dbtRunner

        dbt_chdb.install()
        s = self.settings
        work = s.dbt_work_dir
        full = [
            *args,
            "--project-dir", str(s.dbt_project_dir),
            "--profiles-dir", str(s.dbt_project_dir),
            "--target", s.target,
            "--target-path", str(work / "target"),
            "--log-path", str(work / "logs"),
        ]  # fmt: skip
        tail: deque[str] = deque(maxlen=200)

        def collect(event: Any) -> None:
            if event.info.level in ("info", "warn", "error") and event.info.msg:
                tail.append(str(event.info.msg))

        started, clock = time.time(), time.monotonic()
        log.info("dbt %s", " ".join(args))
        try:
            result = dbtRunner(callbacks=[collect]).invoke(full)
        except Exception as exc:  # dbt's own bugs surface as an outcome, not a dead service
            log.exception("dbt %s crashed", " ".join(args))
            return DbtOutcome(tuple(args), False, time.monotonic() - clock, started, (), repr(exc), tuple(tail))
        nodes = tuple(_node(r) for r in getattr(result.result, "results", None) or ())
        error = None if result.exception is None else str(result.exception)
        outcome = DbtOutcome(
            tuple(args), bool(result.success), time.monotonic() - clock, started, nodes, error, tuple(tail)
        )
        log.info("dbt %s: %s in %.1fs", " ".join(args), "ok" if outcome.success else "FAILED", outcome.seconds)
        return outcome


def _node(result: Any) -> NodeOutcome:
    node = getattr(result, "node", None)
    return NodeOutcome(
        node=getattr(node, "unique_id", None) or str(getattr(result, "unique_id", "?")),
        status=str(getattr(result.status, "value", result.status)),
        seconds=float(getattr(result, "execution_time", 0.0) or 0.0),
        message=getattr(result, "message", None),
        failures=getattr(result, "failures", None),
    )
