"""The local stack as one object: bring components up, down, and say how each one is."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from dev.stack.component import Component, ProbeFailed
from dev.stack.components import build_components
from dev.stack.errors import StackError
from dev.stack.installer import check_java, missing_apt, stale_go, stale_javac, stale_maven
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from dev.stack.supervisor import ProcessInfo, Supervisor

DOWN_STATES = {"STOPPED", "EXITED", "FATAL", "BACKOFF", "UNKNOWN", "STOPPING"}


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # "up" | "starting" | "down"
    detail: str  # what the process manager or the probe said
    version: str
    ports: tuple[int, ...]
    pid: int | None
    uptime_seconds: float | None
    log: Path

    @property
    def healthy(self) -> bool:
        return self.state == "up"


class Stack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.paths = StackPaths(settings.home)
        self.components = build_components(settings)
        self.supervisor = Supervisor(self.paths)
        self.ready_messages: list[str] = []  # of the on-ready steps the last wait ran

    def select(self, names: Sequence[str] = (), *, with_optional: bool = False) -> list[Component]:
        if not names:
            return [c for c in self.components if with_optional or not c.optional]
        known = {c.name: c for c in self.components}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise StackError(f"unknown component {', '.join(unknown)}; known: {', '.join(known)}")
        return [known[n] for n in names]

    # --- up / down -----------------------------------------------------------------------------
    def up(
        self,
        names: Sequence[str] = (),
        on_status: Callable[[list[ComponentStatus]], None] | None = None,
        wait: bool = True,
    ) -> list[ComponentStatus]:
        """Start the named components (all by default) and wait until they are healthy."""
        selected = self.select(names)
        self._check_installed(selected)
        self.paths.make_dirs()
        running = {n for n, p in self.supervisor.processes().items() if p.state not in DOWN_STATES}
        for c in selected:
            if c.name not in running:
                self._check_ports_free(c)
        for c in selected:
            c.prepare()
        self.supervisor.write_config(self.components)
        if self.supervisor.is_running():
            self.supervisor.apply_config()
        else:
            self.supervisor.start_daemon()
        for c in selected:
            self.supervisor.start(c.name)
        if not wait:
            return self.status(names)
        return self.wait_healthy(names, on_status=on_status, run_ready=True)

    def down(self, names: Sequence[str] = ()) -> None:
        """Stop the named components, or the whole stack and its process manager."""
        selected = self.select(names)
        if not names:
            self.supervisor.shutdown()
            return
        if not self.supervisor.is_running():
            return
        for c in selected:
            self.supervisor.stop(c.name)

    def clean(self) -> list[Path]:
        """Stop everything and delete all the stack wrote (data included); returns what was removed."""
        self.down()
        removed = []
        for folder in (self.paths.external_root, self.paths.home):
            if folder.exists():
                shutil.rmtree(folder)
                removed.append(folder)
        return removed

    def wait_healthy(
        self,
        names: Sequence[str] = (),
        timeout: float | None = None,
        on_status: Callable[[list[ComponentStatus]], None] | None = None,
        run_ready: bool = False,
    ) -> list[ComponentStatus]:
        """Wait until the components are healthy. `run_ready`: run each one's on-ready step
        (migrations, topics, connectors) as soon as it is healthy, in start order — not once all
        are: a dataflow becomes healthy only once its store's tables and its topics exist. The
        steps' messages are in `ready_messages`."""
        timeout = timeout if timeout is not None else self.settings.up_timeout
        deadline = time.monotonic() + timeout
        pending = [c for c in self.select(names) if c.on_ready is not None] if run_ready else []
        self.ready_messages.clear()
        while True:
            statuses = self.status(names)
            if on_status:
                on_status(statuses)
            healthy = {s.name for s in statuses if s.healthy}
            while pending and pending[0].name in healthy:
                c = pending.pop(0)
                assert c.on_ready is not None
                message = c.on_ready()
                if message:
                    self.ready_messages.append(f"{c.name}: {message}")
            if all(s.healthy for s in statuses) and not pending:
                return statuses
            for s in statuses:
                if s.detail == "FATAL":
                    raise StackError(f"{s.name} keeps crashing; last lines of {s.log}:\n{_tail(s.log, 15)}")
            if time.monotonic() > deadline:
                late = [f"{s.name} ({s.detail})" for s in statuses if not s.healthy]
                raise StackError(
                    f"not healthy after {self.settings.up_timeout:.0f}s: {', '.join(late)}; see `shopstream logs NAME`"
                )
            time.sleep(0.5)

    # --- status --------------------------------------------------------------------------------
    def status(self, names: Sequence[str] = (), *, with_optional: bool = False) -> list[ComponentStatus]:
        processes = self.supervisor.processes()
        return [self._status_of(c, processes.get(c.name)) for c in self.select(names, with_optional=with_optional)]

    def resident_memory_bytes(self) -> int:
        """Total RSS of every process the stack runs (supervisord and its children)."""
        total = 0
        try:
            daemon = psutil.Process(int(self.supervisor.pidfile.read_text().strip()))
            for proc in [daemon, *daemon.children(recursive=True)]:
                total += proc.memory_info().rss
        except (FileNotFoundError, ValueError, psutil.Error):
            pass
        return total

    def _status_of(self, c: Component, proc: ProcessInfo | None) -> ComponentStatus:
        ports = tuple(p.number for p in c.ports)
        log = self.paths.log(c.name)
        if proc is not None and proc.state in ("STARTING", "BACKOFF"):
            return ComponentStatus(c.name, "starting", proc.state, "-", ports, proc.pid, None, log)
        if proc is None or proc.state != "RUNNING":
            detail = proc.state if proc else "not started"
            return ComponentStatus(c.name, "down", detail, "-", ports, None, None, log)
        uptime = time.time() - proc.started_at if proc.started_at else None
        try:
            version = c.probe()
        except ProbeFailed as exc:
            return ComponentStatus(c.name, "starting", str(exc), "-", ports, proc.pid, uptime, log)
        return ComponentStatus(c.name, "up", "healthy", version, ports, proc.pid, uptime, log)

    # --- preconditions -------------------------------------------------------------------------
    def _check_installed(self, selected: Sequence[Component]) -> None:
        check_java(selected, self.settings)
        apt = missing_apt(selected)
        jars = stale_maven(selected, self.paths)
        programs = stale_go(selected, self.paths)
        classes = stale_javac(selected)
        if apt or jars or programs or classes:
            what = [p.package for p in apt] + [m.output.name for m in jars] + [g.binary.name for g in programs]
            what += [j.class_file.name for j in classes]
            raise StackError(f"not set up (missing {', '.join(what)}): run `shopstream setup` first")

    def _check_ports_free(self, c: Component) -> None:
        for port in c.ports:
            if not _can_bind(port.number):
                raise StackError(
                    f"port {port.number} ({c.name}) is already in use{_owner(port.number)}; "
                    f"stop that process or set {port.setting} to a free port"
                )


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _owner(port: int) -> str:
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return "(no log yet)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
