"""The layout of the stack's one data folder (`SHOPSTREAM_HOME`, default `.local/`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StackPaths:
    home: Path

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def conf(self) -> Path:
        return self.home / "conf"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def stamps(self) -> Path:
        return self.home / "stamps"

    @property
    def jars(self) -> Path:
        return self.home / "jars"

    @property
    def connect_plugins(self) -> Path:
        return self.home / "connect-plugins"

    @property
    def venvs(self) -> Path:
        return self.home / "venvs"

    def data(self, component: str) -> Path:
        return self.home / "data" / component

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def make_dirs(self) -> None:
        for path in (self.logs, self.conf, self.run, self.stamps, self.home / "data"):
            path.mkdir(parents=True, exist_ok=True)
