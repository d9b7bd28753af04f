"""`driver: chdb` for dbt-clickhouse 1.10: dbt on the embedded ClickHouse engine (chdb).

dbt-clickhouse 1.10 knows `driver: http|native` only. Upstream PR ClickHouse/dbt-clickhouse#693 adds
`driver: chdb` by reusing clickhouse-connect's in-process chdb backend behind the adapter's existing
HTTP client wrapper (clickhouse-connect speaks to chdb with the same `Client` API as to a server);
this module does the same and nothing more, so it can be deleted when upstream ships it:

    # profiles.yml
    local:
      type: clickhouse
      driver: chdb
      host: /path/to/store   # for chdb, `host` is the data directory of the embedded engine
      schema: analytics

`install()` must run in the process that invokes dbt (`olap.builds` does) before the adapter
opens a connection. The engine allows one data directory per process, and one process per data
directory: clients on the same path share the engine (the OLAP service's loader and dbt do)."""

from __future__ import annotations

from typing import Any

DRIVER = "chdb"
_installed = False


def install() -> None:
    """Teach dbt-clickhouse `driver: chdb` (idempotent)."""
    global _installed
    if _installed:
        return
    import clickhouse_connect
    from dbt.adapters.clickhouse import connections, dbclient
    from dbt.adapters.clickhouse.dbclient import ChRetryableException
    from dbt.adapters.clickhouse.httpclient import ChHttpClient
    from dbt.adapters.exceptions.connection import FailedToConnectError

    class ChChdbClient(ChHttpClient):
        """The HTTP client wrapper over clickhouse-connect's chdb interface: same Client API."""

        def _create_client(self, credentials: Any) -> Any:
            if not credentials.host or credentials.host == "localhost":
                raise FailedToConnectError("driver: chdb needs `host:` set to the store's data directory")
            try:
                return clickhouse_connect.get_client(
                    interface="chdb", path=credentials.host, query_limit=0, settings=_chdb_settings(self._conn_settings)
                )
            except Exception as exc:  # chdb refuses a second data directory in one process
                raise ChRetryableException(f"chdb store {credentials.host}: {exc}") from exc

        def close(self) -> None:
            self._client.close()

    upstream = dbclient.get_db_client

    def get_db_client(credentials: Any) -> Any:
        if credentials.driver == DRIVER:
            return ChChdbClient(credentials)
        return upstream(credentials)

    dbclient.get_db_client = get_db_client
    connections.get_db_client = get_db_client  # type: ignore[attr-defined]  # imported by name there
    _installed = True


def _chdb_settings(settings: dict[str, Any]) -> dict[str, Any]:
    # an embedded engine has no server sessions: clickhouse-connect's chdb backend keeps session
    # state per handle itself and rejects the HTTP session settings
    return {k: v for k, v in settings.items() if k not in {"session_id", "session_timeout", "session_check"}}


__all__ = ["DRIVER", "install"]
