"""Small facts about the host that the stack needs: users, ports, Java."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from dev.stack.errors import StackError


def is_root() -> bool:
    return os.geteuid() == 0


def service_user(name: str) -> str | None:
    """The account a server that refuses root (Postgres) runs as: `name` when we are root."""
    return name if is_root() else None


def chown(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def run_as(user: str | None, argv: Sequence[str], *, input_text: str | None = None) -> str:
    """Run a command (as `user` when given), returning stdout; a failure becomes a StackError."""
    full = ["runuser", "-u", user, "--", *argv] if user else list(argv)
    proc = subprocess.run(full, input=input_text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise StackError(f"`{' '.join(argv[:2])}` failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def java_path(java_home: Path | None) -> str:
    """Where Java is expected, without checking (commands are built before anything is installed)."""
    if java_home is not None:
        return str(java_home / "bin" / "java")
    return shutil.which("java") or "java"


def java_binary(java_home: Path | None) -> str:
    """Where Java is; a missing one is a StackError naming the setting."""
    if java_home is not None:
        candidate = java_home / "bin" / "java"
        if not candidate.exists():
            raise StackError(f"no Java at {candidate}; fix SHOPSTREAM_JAVA_HOME or unset it to use PATH")
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise StackError(
            "Java 17+ is not installed (Kafka and Kafka Connect need it): "
            "`apt-get install openjdk-17-jre-headless`, or set SHOPSTREAM_JAVA_HOME"
        )
    return found


def javac_binary(java_home: Path | None) -> str:
    """Where the Java compiler is (the OpenSearch launcher is compiled by `setup`)."""
    candidate = str(java_home / "bin" / "javac") if java_home is not None else shutil.which("javac")
    if candidate is None or not Path(candidate).exists():
        raise StackError(
            "javac (a JDK 17+) is not installed; it compiles the OpenSearch launcher: "
            "`apt-get install openjdk-17-jdk-headless`, or set SHOPSTREAM_JAVA_HOME to a JDK"
        )
    return candidate
