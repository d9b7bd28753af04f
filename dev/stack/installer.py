"""`shopstream setup`: install what the stack runs from (Debian packages, Maven jars, the PyFlink
environment). Idempotent: each part is skipped when already in place, so a warm run takes seconds."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dev.stack.component import AptPackage, Component, GoBinary, JavaProgram, MavenArtifacts
from dev.stack.errors import StackError
from dev.stack.paths import StackPaths
from dev.stack.settings import StackSettings
from dev.stack.system import is_root, java_binary, javac_binary

Report = Callable[[str], None]
FLINK_REQUIREMENTS = Path("streams") / "flink" / "requirements.txt"


def missing_apt(components: Sequence[Component]) -> list[AptPackage]:
    seen: dict[str, AptPackage] = {}
    for c in components:
        for pkg in c.apt:
            if not pkg.provides.exists():
                seen.setdefault(pkg.package, pkg)
    return list(seen.values())


def stale_maven(components: Sequence[Component], paths: StackPaths) -> list[MavenArtifacts]:
    unique = {m.output: m for c in components for m in c.maven}
    return [m for m in unique.values() if not _is_current(m, paths)]


def install_apt(packages: Sequence[AptPackage], report: Report) -> None:
    names = [p.package for p in packages]
    if shutil.which("apt-get") is None:
        raise StackError(f"apt-get not found; install these Debian packages by other means: {' '.join(names)}")
    if not is_root():
        raise StackError(f"Debian packages missing; install them as root: apt-get install {' '.join(names)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # keep the packages' own services (a system-wide Postgres/Redis on our ports) from starting
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\n# written by shopstream setup for the length of apt-get install\nexit 101\n")
        policy.chmod(0o755)
    try:
        report(f"apt-get update, then install {' '.join(names)}")
        _run(["apt-get", "update", "-q"], env, "apt-get update (is a Debian mirror reachable?)")
        _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *names], env, "apt-get install")
    finally:
        if ours:
            policy.unlink(missing_ok=True)


def fetch_maven(artifacts: MavenArtifacts, paths: StackPaths, report: Report) -> None:
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) is not installed; it fetches the Kafka and Debezium jars: apt-get install maven")
    report(f"mvn dependency:copy-dependencies -f {artifacts.pom}")
    staging = artifacts.output.with_name(artifacts.output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    _run(
        ["mvn", "-B", "-q", "-f", str(artifacts.pom), "dependency:copy-dependencies", f"-DoutputDirectory={staging}"],
        dict(os.environ),
        f"mvn on {artifacts.pom}",
    )
    shutil.rmtree(artifacts.output, ignore_errors=True)
    staging.rename(artifacts.output)
    stamp = _stamp_of(artifacts, paths)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(_digest(artifacts))


def stale_go(components: Sequence[Component], paths: StackPaths) -> list[GoBinary]:
    unique = {g.binary: g for c in components for g in c.go}
    return [g for g in unique.values() if not _go_current(g, paths)]


def build_go(program: GoBinary, paths: StackPaths, report: Report) -> None:
    if shutil.which("go") is None:
        raise StackError(f"Go is not installed; it builds {program.module}: apt-get install golang, or get Go 1.22+")
    report(f"go install {program.module}@{program.version}")
    program.binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(program.binary.parent), "CGO_ENABLED": "0"}
    _run(["go", "install", f"{program.module}@{program.version}"], env, f"go install {program.module}")
    stamp = paths.stamps / f"go-{program.binary.name}"
    stamp.write_text(program.version)


def _go_current(program: GoBinary, paths: StackPaths) -> bool:
    stamp = paths.stamps / f"go-{program.binary.name}"
    return program.binary.exists() and stamp.exists() and stamp.read_text() == program.version


def stale_javac(components: Sequence[Component]) -> list[JavaProgram]:
    """Java programs of ours whose class is missing or older than their source (or their jars)."""
    unique = {j.class_file: j for c in components for j in c.javac}
    return [j for j in unique.values() if not _class_current(j)]


def compile_java(program: JavaProgram, settings: StackSettings, report: Report) -> None:
    javac = javac_binary(settings.java_home)
    report(f"javac {program.source.name} into {program.output}")
    program.output.mkdir(parents=True, exist_ok=True)
    argv = [javac, "-nowarn", "-d", str(program.output), "-cp", f"{program.classpath}/*", str(program.source)]
    _run(argv, dict(os.environ), f"javac {program.source}")


def _class_current(program: JavaProgram) -> bool:
    if not program.class_file.exists():
        return False
    built = program.class_file.stat().st_mtime
    jars = [p.stat().st_mtime for p in program.classpath.glob("*.jar")]
    return built >= program.source.stat().st_mtime and bool(jars) and built >= max(jars)


def setup_flink_env(settings: StackSettings, paths: StackPaths, report: Report) -> Path:
    """PyFlink gets its own virtualenv (its pins fight dbt-clickhouse's), as Flink jobs ship their own."""
    venv = paths.venvs / "flink"
    requirements = settings.repo / FLINK_REQUIREMENTS
    stamp = paths.stamps / "venv-flink"
    digest = hashlib.sha256(requirements.read_bytes() + (settings.repo / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and (venv / "bin" / "python").exists():
        return venv
    report(f"PyFlink environment in {venv}")
    if not (venv / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(venv)], dict(os.environ), "python -m venv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, "-r", str(requirements)], dict(os.environ), "pip install (PyFlink environment)")
    # the shared domain package, which is dependency-light by design
    _run([*pip, "--no-deps", "-e", str(settings.repo)], dict(os.environ), "pip install -e . (PyFlink environment)")
    stamp.write_text(digest)
    return venv


# what the browser tests drive (the dashboard): Debian's Chromium, headless
BROWSER = AptPackage("chromium", Path("/usr/bin/chromium"))


def install_all(
    settings: StackSettings,
    components: Sequence[Component],
    paths: StackPaths,
    report: Report,
    *,
    flink: bool = False,
    browser: bool = False,
) -> str | None:
    """Everything `setup` does, each part skipped when already in place; returns the Java found."""
    paths.make_dirs()
    java = check_java(components, settings)
    apt = missing_apt(components)
    if browser and not BROWSER.provides.exists():
        apt = [*apt, BROWSER]
    if apt:
        install_apt(apt, report)
    for artifacts in stale_maven(components, paths):
        fetch_maven(artifacts, paths, report)
    for program in stale_go(components, paths):
        build_go(program, paths, report)
    for source in stale_javac(components):
        compile_java(source, settings, report)
    if flink:
        setup_flink_env(settings, paths, report)
    return java


def check_java(components: Sequence[Component], settings: StackSettings) -> str | None:
    if not any(c.needs_java for c in components):
        return None
    java = java_binary(settings.java_home)
    proc = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    first = (proc.stderr or proc.stdout).splitlines()[0] if (proc.stderr or proc.stdout) else ""
    major = _java_major(first)
    if major is not None and major < 17:
        raise StackError(f"Java {major} found ({java}); Kafka 4 needs Java 17+: set SHOPSTREAM_JAVA_HOME")
    return first


def _java_major(version_line: str) -> int | None:
    # openjdk version "17.0.15" 2025-04-15
    if '"' not in version_line:
        return None
    number = version_line.split('"')[1]
    head = number.split(".")[0]
    if head == "1":  # "1.8.0_392"
        head = number.split(".")[1]
    return int(head) if head.isdigit() else None


def _digest(artifacts: MavenArtifacts) -> str:
    return hashlib.sha256(artifacts.pom.read_bytes()).hexdigest()


def _stamp_of(artifacts: MavenArtifacts, paths: StackPaths) -> Path:
    return paths.stamps / ("maven-" + artifacts.output.name)


def _is_current(artifacts: MavenArtifacts, paths: StackPaths) -> bool:
    stamp = _stamp_of(artifacts, paths)
    return stamp.exists() and stamp.read_text() == _digest(artifacts) and any(artifacts.output.glob("*.jar"))


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        tail = " | ".join(lines[-3:]) if lines else f"exit {proc.returncode}"
        raise StackError(f"{what} failed: {tail}")
