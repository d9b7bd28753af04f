"""How the stack starts a JVM component: a classpath folder filled by Maven, log4j2 to stdout."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dev.stack.settings import StackSettings
from dev.stack.system import java_path


def java_command(
    settings: StackSettings,
    *,
    heap: str,
    classpath: Path,
    main: str,
    args: list[str],
    flags: Sequence[str] = (),
    before_jars: Sequence[Path] = (),
) -> list[str]:
    """`java` with our common flags, then `flags`; the classpath is `before_jars` (folders: config,
    classes of ours), then every jar in `classpath`."""
    return [
        java_path(settings.java_home),
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={settings.repo / 'infra' / 'conf' / 'log4j2.properties'}",
        *flags,
        "-cp",
        ":".join([*(str(p) for p in before_jars), f"{classpath}/*"]),
        main,
        *args,
    ]


def jar_version(folder: Path, artifact: str) -> str:
    """The version in `<artifact>-<version>.jar` in a Maven-filled folder."""
    for jar in sorted(folder.glob(f"{artifact}-*.jar")):
        rest = jar.stem[len(artifact) + 1 :]
        if rest[:1].isdigit():
            return rest
    return "?"
