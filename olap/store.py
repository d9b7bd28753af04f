"""The OLAP store: the embedded ClickHouse engine (chdb) on a data directory, or a ClickHouse server.

The embedded engine is in-process and one data directory can have one process: two processes on
the same directory would each believe they own its parts and corrupt it. So the OLAP service takes
an exclusive lock on the directory before it opens it, and everything else (the CLI, the tests,
analysts' tools) goes through the service. Inside the service the loader, dbt and queries each
open their own client on the same path: chdb shares one engine between them, and ClickHouse runs
their queries concurrently (a dbt table swap is an atomic EXCHANGE, so readers never see a half
built mart)."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from olap.settings import OlapSettings
from olap.tables import RAW_DATABASE, ddl


class StoreBusy(RuntimeError):
    """The data directory is owned by another process."""


@dataclass
class StoreLock:
    """An exclusive lock on a data directory, held for the life of the owning process."""

    path: Path
    _file: IO[str] | None = field(default=None, repr=False)

    def acquire(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        lock_file = (self.path / ".owner.lock").open("a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            owner = lock_file.read().strip() or "another process"
            lock_file.close()
            raise StoreBusy(
                f"the OLAP store {self.path} is owned by {owner}; go through the OLAP service "
                "(`shopstream olap ...`), or stop it first (`shopstream down olap`)"
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"pid {os.getpid()}\n")
        lock_file.flush()
        self._file = lock_file

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def connect(olap: OlapSettings, **kwargs: Any) -> Client:
    """A client of the store (the caller owns the store when it is local: see StoreLock)."""
    if olap.target == "local":
        return clickhouse_connect.get_client(interface="chdb", path=str(olap.path), **kwargs)
    return clickhouse_connect.get_client(
        host=olap.clickhouse.host,
        port=olap.clickhouse.port,
        username=olap.clickhouse.user,
        password=olap.clickhouse.password.get_secret_value(),
        **kwargs,
    )


def create_raw_tables(client: Client) -> bool:
    """The raw layer the loader lands into (idempotent); True when it did not exist before (a new
    or wiped store, which must be landed from the start of the topics whatever the group's offsets)."""
    existed = bool(client.command(f"EXISTS DATABASE {RAW_DATABASE}"))
    for statement in ddl():
        client.command(statement)
    return not existed


__all__ = ["StoreBusy", "StoreLock", "connect", "create_raw_tables"]
