"""The OLAP service: the one process that owns the store. It lands the topics (loader thread),
rebuilds the marts with dbt (on request, and every `build_interval_s` when new rows have landed)
and answers analysts' queries, all on the same engine.

HTTP (port 8124):
    GET  /health, /status         liveness; loader figures, backlog, last dbt outcome
    POST /query                   {"sql": ..., "format": "JSONCompact"} read-only, problem+json errors
    GET|POST /?query=...          the core of the ClickHouse HTTP interface (read-only): curl, HTTP tools
    POST /dbt                     {"args": ["build"]} one dbt invocation at a time (409 when busy)
    POST /replay                  land every topic again from its beginning (deduplicated)
    GET  /rebuilds/plan           what a rebuild would land (`shopstream replay plan olap_landing`)
    POST /rebuilds                a new generation of the raw tables beside the live one (olap.rebuild)
    GET  /rebuilds                the live generation, every rebuild's status and progress
    POST /rebuilds/{n}/verify     parity with the live landing at the generation's offset vector
    POST /rebuilds/{n}/promote    swap its tables in (the loader paused meanwhile)
    DELETE /rebuilds/{n}          drop a generation that is not live
    GET  /dbt-docs/               the dbt docs site of the last `dbt docs generate`"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from confluent_kafka import KafkaException
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from olap.builds import BadInvocation, BuildBusy, DbtRunner, export_profile_values
from olap.loader import Loader
from olap.rebuild import RebuildError, Rebuilds
from olap.settings import OlapSettings
from olap.store import StoreLock, connect, create_raw_tables
from shopstream import __version__
from shopstream.serde import AvroSerde, RegistryClient

log = logging.getLogger("shopstream.olap")

PROBLEM = "application/problem+json"
# query results analysts can ask for: ClickHouse's own output formats
FORMATS = frozenset({
    "JSON", "JSONCompact", "JSONEachRow", "CSV", "CSVWithNames", "TSV", "TabSeparated", "TSVWithNames",
    "TabSeparatedWithNames", "Pretty", "PrettyCompact", "PrettyCompactMonoBlock", "Markdown", "Parquet",
    "Arrow", "ArrowStream", "Values",
})  # fmt: skip
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+\w+\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code: (\d+)")


class QueryIn(BaseModel):
    sql: str = Field(min_length=1, max_length=1_000_000)
    format: str = "JSONCompact"


class DbtIn(BaseModel):
    args: list[str] = Field(min_length=1, max_length=50)
    # how long to wait for a running invocation (the periodic build) to finish first
    wait_s: float = Field(default=0.0, ge=0, le=3600)


class RebuildIn(BaseModel):
    wait_s: float = Field(default=60.0, ge=0, le=3600, alias="waitSeconds")
    accept_differences: bool = Field(default=False, alias="acceptDifferences")


class RebuildStartIn(BaseModel):
    max_rate: int | None = Field(default=None, gt=0, alias="maxRate")


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# what one analyst query may take from the process that also lands and builds
QUERY_LIMITS = {"max_execution_time": "120", "max_memory_usage": str(4 * 1024**3), "max_result_bytes": str(1024**3)}


class QueryRefused(ValueError):
    """A query the service will not run."""


@dataclass
class OlapService:
    settings: OlapSettings
    lock: StoreLock | None = None
    loader: Loader | None = None
    rebuilds: Rebuilds | None = None
    dbt: DbtRunner | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)
    _built_after: int = -1  # loader record count at the last periodic build

    def start(self) -> None:
        s = self.settings
        if s.target == "local":
            self.lock = StoreLock(s.path)
            self.lock.acquire()  # before the engine opens the directory
        export_profile_values(s)
        admin = connect(s)
        new_store = create_raw_tables(admin)
        serde = AvroSerde(RegistryClient(s.registry.url))
        self.loader = Loader(s, connect(s), serde)
        if new_store:  # the consumer group may remember offsets of a store that is gone
            log.info("a new store: landing every topic from its beginning")
            self.loader.replay()
        self.rebuilds = Rebuilds(s, connect(s), serde, self.loader)
        self.dbt = DbtRunner(s)
        self._spawn("olap-loader", self.loader.run, self.stop)
        self.rebuilds.resume()
        if s.build_interval_s > 0:
            self._spawn("olap-builder", self._build_periodically)
        log.info(
            "OLAP service on %s (%s store %s)", s.url, s.target, s.path if s.target == "local" else s.clickhouse.host
        )

    def close(self) -> None:
        self.stop.set()
        if self.rebuilds is not None:
            self.rebuilds.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        if self.lock is not None:
            self.lock.release()

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _build_periodically(self) -> None:
        # the first build soon after start (the history has just landed), then every interval
        wait = min(30.0, self.settings.build_interval_s)
        while not self.stop.wait(wait):
            wait = self.settings.build_interval_s
            assert self.loader is not None and self.dbt is not None
            landed = self.loader.stats.records
            if landed == self._built_after:
                continue  # nothing new since the last build
            try:
                outcome = self.dbt.invoke(["build"])
                if outcome.success:
                    self._built_after = landed
            except BuildBusy:
                continue  # one asked for is running: try again at the next interval

    def reader(self) -> Client:
        """This thread's read-only client (clients serialize their own queries; threads should not).
        The limits come first: `readonly=1` then forbids changing them, writing, and table
        functions (file, url, ...) that reach outside the store."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = connect(self.settings, settings={**QUERY_LIMITS, "readonly": "1"})
        return client

    def read(self, sql: str, fmt: str | None) -> bytes:
        """An analyst's query, read-only; ClickHouseError (or QueryRefused) when it cannot run."""
        client = self.reader()
        # INTO OUTFILE is executed by the embedded engine itself (a server leaves it to its client):
        # find it in the parsed query, where comments and spacing cannot hide it
        parsed = client.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": sql}).result_rows[0][0]
        if re.search(r"\bINTO OUTFILE\b", str(parsed), re.IGNORECASE):
            raise QueryRefused("INTO OUTFILE is not allowed: the result comes back in the response")
        return bytes(client.raw_query(sql, fmt=fmt))

    def healthy(self) -> str | None:
        """What is wrong with the service, if anything."""
        dead = [t.name for t in self.threads if not t.is_alive()]
        return f"thread(s) {', '.join(dead)} stopped" if dead else None

    def status(self) -> dict[str, Any]:
        s = self.settings
        return {
            "version": __version__,
            "target": s.target,
            "store": str(s.path) if s.target == "local" else s.clickhouse.address,
            "engine": self.reader().server_version,
            "loader": self.loader.stats.as_dict() if self.loader else None,
            "dbt": self.dbt.last.as_dict() if self.dbt and self.dbt.last else None,
            "buildIntervalSeconds": s.build_interval_s,
        }


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"type": f"https://shopstream.dev/problems/{title.lower().replace(' ', '-')}", "title": title,
         "status": status, "detail": detail, **extra},
        status_code=status,
        media_type=PROBLEM,
    )  # fmt: skip


def create_app(settings: OlapSettings, service: OlapService | None = None) -> FastAPI:
    svc = service or OlapService(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            svc.close()

    app = FastAPI(title="shopstream OLAP", version=__version__, lifespan=lifespan)
    app.state.service = svc
    docs_dir = settings.dbt_work_dir / "target"
    docs_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/dbt-docs", StaticFiles(directory=docs_dir, html=True, check_dir=False), name="dbt-docs")

    @app.get("/health")
    def health() -> Response:
        trouble = svc.healthy()
        if trouble:
            return problem(503, "Unhealthy", trouble)
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/status")
    def status() -> dict[str, Any]:
        return svc.status()

    @app.post("/query")
    def query(body: QueryIn) -> Response:
        sql, format = body.sql, body.format
        if format not in FORMATS:
            return problem(400, "Unknown format", f"format must be one of {', '.join(sorted(FORMATS))}")
        if _TRAILING_FORMAT.search(sql):
            return problem(400, "Format in query", "leave the FORMAT clause out; pass `format` instead")
        try:
            data = svc.read(sql.strip().rstrip(";"), fmt=format)
        except QueryRefused as exc:
            return problem(400, "Query refused", str(exc))
        except ClickHouseError as exc:
            return problem(400, "Query failed", _clean(exc), code=_code(exc))
        return Response(content=data, media_type=_media_type(format))

    @app.api_route("/", methods=["GET", "POST"])
    async def clickhouse_http(request: Request) -> Response:
        # the ClickHouse HTTP interface: the query is the `query` parameter followed by the body
        body = (await request.body()).decode()
        sql = " ".join(p for p in (request.query_params.get("query", ""), body) if p.strip()).strip()
        if not sql:
            return Response("Ok.\n", media_type="text/plain")  # what ClickHouse answers to GET /
        fmt = None if _TRAILING_FORMAT.search(sql) else request.query_params.get("default_format", "TabSeparated")
        try:
            data = await run_in_threadpool(svc.read, sql.rstrip().rstrip(";"), fmt)
        except QueryRefused as exc:
            return Response(f"{exc}\n", status_code=403, media_type="text/plain")
        except ClickHouseError as exc:
            code = _code(exc)
            return Response(f"{_clean(exc)}\n", status_code=500 if code != 164 else 403, media_type="text/plain",
                            headers={"X-ClickHouse-Exception-Code": str(code)})  # fmt: skip
        return Response(content=data, media_type=_media_type(fmt or "TabSeparated"))

    @app.post("/replay")
    def replay() -> dict[str, str]:
        """Land every topic again from its beginning: the raw tables deduplicate, nothing doubles."""
        assert svc.loader is not None
        svc.loader.replay()
        return {"status": "replaying"}

    def rebuilds() -> Rebuilds:
        assert svc.rebuilds is not None
        return svc.rebuilds

    def rebuild_call(call: Any, *args: Any) -> Response:
        try:
            return JSONResponse(jsonable(call(*args)))
        except RebuildError as exc:
            return problem(409, "Rebuild refused", str(exc))
        except ClickHouseError as exc:
            log.exception("rebuild")
            return problem(500, "Rebuild failed", _clean(exc), code=_code(exc))
        except (RuntimeError, KafkaException) as exc:  # the loader did not pause, the broker away
            log.exception("rebuild")
            return problem(503, "Rebuild failed", f"{type(exc).__name__}: {exc}")

    @app.get("/rebuilds/plan")
    def rebuild_plan() -> Response:
        return rebuild_call(rebuilds().plan)

    @app.post("/rebuilds")
    def rebuild_start(body: RebuildStartIn | None = None) -> Response:
        return rebuild_call(lambda: rebuilds().start(body.max_rate if body else None).to_json())

    @app.get("/rebuilds")
    def rebuild_status() -> Response:
        return rebuild_call(rebuilds().status)

    @app.post("/rebuilds/{generation}/verify")
    def rebuild_verify(generation: int, body: RebuildIn) -> Response:
        return rebuild_call(rebuilds().verify, generation, body.wait_s)

    @app.post("/rebuilds/{generation}/promote")
    def rebuild_promote(generation: int, body: RebuildIn) -> Response:
        def promote() -> dict[str, Any]:
            promoted = rebuilds().promote(generation, body.accept_differences, body.wait_s)
            svc._built_after = -1  # the marts are built again from the promoted tables
            return promoted.to_json()

        return rebuild_call(promote)

    @app.delete("/rebuilds/{generation}")
    def rebuild_drop(generation: int) -> Response:
        return rebuild_call(rebuilds().drop, generation)

    @app.post("/dbt")
    def dbt(body: DbtIn) -> Response:
        assert svc.dbt is not None
        try:
            outcome = svc.dbt.invoke(body.args, wait=body.wait_s)
        except BadInvocation as exc:
            return problem(400, "Bad dbt invocation", str(exc))
        except BuildBusy as exc:
            return problem(409, "dbt busy", str(exc))
        return JSONResponse(outcome.as_dict())

    return app


def _code(exc: Exception) -> int:
    match = _ERROR_CODE.search(str(exc))
    return int(match.group(1)) if match else 0


def _clean(exc: Exception) -> str:
    text = str(exc).strip()
    return text[text.find("Code:") :] if "Code:" in text else text


def _media_type(fmt: str) -> str:
    if fmt.startswith("JSON"):
        return "application/json" if fmt in ("JSON", "JSONCompact") else "application/x-ndjson"
    if fmt.startswith("CSV"):
        return "text/csv"
    if fmt in ("Parquet", "Arrow", "ArrowStream"):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def main() -> None:
    """`shopstream olap serve`: run the service in the foreground."""
    import uvicorn

    settings = OlapSettings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
    )
    uvicorn.run(create_app(settings), host=settings.listen.host, port=settings.listen.port, log_level="warning")
