"""What the stack knows about one component: how to install, prepare, run and probe it.

Adding a component to the local stack is one module in `dev/stack/components/` that
returns a `Component`, plus one line in that package's registry (and, for a JVM component, a
`pom.xml` under `infra/maven/`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ProbeFailed(Exception):
    """The component is not (yet) answering; the message says what the probe saw."""


@dataclass(frozen=True)
class AptPackage:
    """A Debian package, and a file whose presence proves it is installed."""

    package: str
    provides: Path


@dataclass(frozen=True)
class MavenArtifacts:
    """A pom.xml of ours whose runtime dependencies are copied into `output`."""

    pom: Path
    output: Path


@dataclass(frozen=True)
class GoBinary:
    """A Go program built by `go install MODULE@VERSION` from the Go module proxy into `binary`."""

    module: str
    version: str
    binary: Path


@dataclass(frozen=True)
class JavaProgram:
    """A Java source of ours compiled by `javac` against a Maven-filled folder of jars into `output`
    (the OpenSearch launcher): `classes` then goes on the component's classpath."""

    source: Path
    classpath: Path
    output: Path

    @property
    def class_file(self) -> Path:
        return self.output / f"{self.source.stem}.class"


@dataclass(frozen=True)
class Port:
    number: int
    setting: str  # the environment variable that moves it, named in errors


@dataclass(frozen=True)
class Component:
    name: str
    summary: str
    ports: Sequence[Port]
    # argv run under the process manager (foreground, logging to stdout/stderr)
    command: Sequence[str]
    # returns the running version when the component is healthy, else raises ProbeFailed
    probe: Callable[[], str]
    # idempotent first-start work: create data dirs, initdb, format storage, render config
    prepare: Callable[[], None] = lambda: None
    apt: Sequence[AptPackage] = ()
    maven: Sequence[MavenArtifacts] = ()
    go: Sequence[GoBinary] = ()
    javac: Sequence[JavaProgram] = ()
    needs_java: bool = False
    # (host, port) pairs that must accept connections before the command starts
    wait_for: Sequence[tuple[str, int]] = ()
    user: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    # run once the component is healthy, by `up` (migrations, connectors); says what it did
    on_ready: Callable[[], str | None] | None = None
    # generated config files the command reads: a change in them restarts the component on `up`
    config_files: Sequence[Path] = ()
    # not part of a plain `up` (which starts the platform); started by name (`up simulator`)
    optional: bool = False
    stop_signal: str = "TERM"
    stop_wait_seconds: int = 30

    def revision(self) -> str:
        """Changes when the component's jars or config files change, so that `up` restarts it."""
        digest = hashlib.sha256()
        for artifacts in self.maven:
            digest.update(artifacts.pom.read_bytes())
        for program in self.javac:
            digest.update(program.source.read_bytes())
        for path in self.config_files:
            digest.update(path.read_bytes() if path.exists() else b"")
        return digest.hexdigest()[:16]

    @property
    def port(self) -> int | None:
        return self.ports[0].number if self.ports else None
