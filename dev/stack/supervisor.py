"""The process manager of the local stack: supervisord, configured from the component registry,
driven over its XML-RPC interface on a unix socket."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from dev.stack.component import Component
from dev.stack.errors import StackError
from dev.stack.paths import StackPaths
from dev.stack.system import is_root


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    state: str  # RUNNING, STARTING, STOPPED, BACKOFF, EXITED, FATAL, ...
    pid: int | None
    started_at: float | None
    description: str


class Supervisor:
    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths
        self.dir = paths.home / "supervisor"
        self.config = self.dir / "supervisord.conf"
        self.pidfile = self.dir / "supervisord.pid"
        self.socket = _socket_path(self.dir)

    # --- configuration -------------------------------------------------------------------------
    def write_config(self, components: Sequence[Component]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        sections = [
            "[supervisord]",
            f"logfile={self.paths.logs / 'supervisord.log'}",
            f"pidfile={self.pidfile}",
            f"directory={self.paths.home}",
            "childlogdir=" + str(self.paths.logs),
            *(["user=root"] if is_root() else []),
            "",
            "[unix_http_server]",
            f"file={self.socket}",
            "chmod=0700",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
        ]
        for c in components:
            sections += _program_section(c, self.paths)
        self.config.write_text("\n".join(sections) + "\n")

    # --- daemon --------------------------------------------------------------------------------
    def is_running(self) -> bool:
        try:
            with self._rpc() as rpc:
                return bool(rpc.supervisor.getState()["statecode"] == 1)
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return False

    def start_daemon(self) -> None:
        """Start supervisord (it daemonizes); it starts every program marked autostart."""
        proc = subprocess.run(
            [_python(), "-m", "supervisor.supervisord", "-c", str(self.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"supervisord did not start: {(proc.stderr or proc.stdout).strip()[-300:]}")
        deadline = time.monotonic() + 15
        while not self.is_running():
            if time.monotonic() > deadline:
                raise StackError(f"supervisord did not answer on {self.socket}; see {self.paths.logs}")
            time.sleep(0.1)

    def apply_config(self) -> None:
        """Make the running daemon match the config file: add and drop programs, and restart the
        changed ones that were running (a stopped one stays stopped)."""
        with self._rpc() as rpc:
            running = {
                p["name"]
                for p in rpc.supervisor.getAllProcessInfo()
                if p["statename"] in ("RUNNING", "STARTING", "BACKOFF")
            }
            added, changed, removed = rpc.supervisor.reloadConfig()[0]
            for name in removed + changed:
                _ignore_faults(rpc.supervisor.stopProcessGroup, name)
                rpc.supervisor.removeProcessGroup(name)
            for name in changed + added:
                rpc.supervisor.addProcessGroup(name)
            for name in changed:
                if name in running:
                    _ignore_faults(rpc.supervisor.startProcess, name, False, codes=(60,))

    def shutdown(self, timeout: float = 120) -> None:
        """Stop every program, then supervisord itself; wait until it is gone."""
        if not self.is_running():
            return
        with self._rpc() as rpc:
            rpc.supervisor.shutdown()
        deadline = time.monotonic() + timeout
        while self.pidfile.exists() or self.is_running():
            if time.monotonic() > deadline:
                raise StackError(f"supervisord still running after {timeout:.0f}s; see {self.paths.logs}")
            time.sleep(0.2)

    # --- programs ------------------------------------------------------------------------------
    def start(self, name: str) -> None:
        with self._rpc() as rpc:
            _ignore_faults(rpc.supervisor.startProcess, name, False, codes=(60,))  # ALREADY_STARTED

    def stop(self, name: str) -> None:
        with self._rpc() as rpc:
            _ignore_faults(rpc.supervisor.stopProcess, name, True, codes=(70,))  # NOT_RUNNING

    def processes(self) -> dict[str, ProcessInfo]:
        if not self.is_running():
            return {}
        out = {}
        with self._rpc() as rpc:
            infos = rpc.supervisor.getAllProcessInfo()
        for p in infos:
            running = p["statename"] in ("RUNNING", "STARTING", "STOPPING")
            out[p["name"]] = ProcessInfo(
                name=p["name"],
                state=p["statename"],
                pid=p["pid"] or None,
                started_at=float(p["start"]) if running and p["start"] else None,
                description=p["description"],
            )
        return out

    @contextmanager
    def _rpc(self) -> Iterator[Any]:
        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.socket}")
        try:
            yield xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        finally:
            transport.close()


def _program_section(c: Component, paths: StackPaths) -> list[str]:
    argv = list(c.command)
    if c.wait_for:
        # start only once the dependencies accept connections, then exec the real command
        deps = [f"{host}:{port}" for host, port in c.wait_for]
        argv = [_python(), "-m", "dev.stack.waitfor", *deps, "--", *argv]
    revision = {"SHOPSTREAM_REVISION": c.revision()} if c.maven or c.config_files else {}
    environment = {**c.environment, **revision}
    env = ",".join(f'{k}="{v}"' for k, v in environment.items())
    return [
        f"[program:{c.name}]",
        "command=" + " ".join(shlex.quote(a).replace("%", "%%") for a in argv),
        f"directory={paths.home}",
        *([f"user={c.user}"] if c.user else []),
        *([f"environment={env}"] if env else []),
        "autostart=false",  # `up` starts the components it is asked for
        "autorestart=true",
        "startsecs=2",
        "startretries=10",
        f"stopsignal={c.stop_signal}",
        f"stopwaitsecs={c.stop_wait_seconds}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={paths.log(c.name)}",
        "stdout_logfile_maxbytes=50MB",
        "stdout_logfile_backups=3",
        "",
    ]


def _python() -> str:
    """This environment's interpreter by a stable name (the config must not change with the
    name a caller happened to start Python under, or `up` would restart programs for nothing)."""
    return str(Path(sys.prefix) / "bin" / "python")


def _socket_path(folder: Path) -> Path:
    """A unix socket path must stay under ~100 bytes; deep checkouts fall back to /tmp."""
    path = folder / "supervisor.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha1(str(folder).encode()).hexdigest()[:12]
    return Path(f"/tmp/shopstream-{digest}.sock")


def _ignore_faults(call: Any, *args: Any, codes: tuple[int, ...] = (10,)) -> None:
    try:
        call(*args)
    except xmlrpc.client.Fault as fault:
        if fault.faultCode not in codes:
            raise
