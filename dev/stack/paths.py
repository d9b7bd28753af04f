"""The layout of the stack's one data folder (`SHOPSTREAM_HOME`, default `.local/`)."""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

# Where a server that runs as its own account (Postgres, when we are root) keeps its files when
# that account cannot reach SHOPSTREAM_HOME (a checkout under /root, mode 700).
SERVICE_ROOT = Path("/var/lib/shopstream")


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

    def service_root(self, user: str | None) -> Path:
        """The home, or a folder of its own under /var/lib/shopstream when `user` cannot reach it."""
        if user is None or _searchable_by_others(self.home):
            return self.home
        return self.external_root

    @property
    def external_root(self) -> Path:
        return SERVICE_ROOT / hashlib.sha1(str(self.home).encode()).hexdigest()[:12]

    def make_dirs(self) -> None:
        for path in (self.logs, self.conf, self.run, self.stamps, self.home / "data"):
            path.mkdir(parents=True, exist_ok=True)


def _searchable_by_others(path: Path) -> bool:
    """Every existing folder from / down to `path` lets other accounts pass through."""
    return all(not p.exists() or p.stat().st_mode & stat.S_IXOTH for p in [*reversed(path.parents), path])
