"""The Confluent Schema Registry REST API over a SchemaStore (Avro only)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry import errors
from registry.errors import RegistryError
from registry.store import SchemaStore, Version
from shopstream import __version__

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryResponse(JSONResponse):
    media_type = MEDIA_TYPE


async def _json_body(request: Request) -> dict[str, Any]:
    """Confluent clients send `application/vnd.schemaregistry.v1+json` (or plain JSON); read either."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise errors.bad_request(f"the request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    return body


_Body = Depends(_json_body)


def create_app(store: SchemaStore) -> FastAPI:
    app = FastAPI(
        title="shopstream schema registry",
        version=__version__,
        default_response_class=RegistryResponse,
        docs_url="/docs",
        redoc_url=None,
    )

    @app.exception_handler(RegistryError)
    async def registry_error(_: Request, exc: RegistryError) -> Response:
        return RegistryResponse(exc.body(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return RegistryResponse({"error_code": 422, "message": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return RegistryResponse(
            {"error_code": exc.status_code, "message": str(exc.detail)}, status_code=exc.status_code
        )

    @app.get("/")
    async def root() -> dict[str, Any]:
        return {}

    @app.get("/v1/metadata/version")
    async def metadata_version() -> dict[str, Any]:
        return {"version": __version__, "commitId": "shopstream"}

    @app.get("/schemas/types")
    async def schema_types() -> list[str]:
        return ["AVRO"]

    # --- schemas by id ------------------------------------------------------------------------
    @app.get("/schemas/ids/{schema_id}")
    async def schema_by_id(schema_id: int) -> dict[str, Any]:
        return {"schema": store.schema_by_id(schema_id).canonical}

    @app.get("/schemas/ids/{schema_id}/schema")
    async def raw_schema_by_id(schema_id: int) -> Response:
        return Response(store.schema_by_id(schema_id).canonical, media_type=MEDIA_TYPE)

    @app.get("/schemas/ids/{schema_id}/subjects")
    async def subjects_of_id(schema_id: int, deleted: bool = False) -> list[str]:
        return sorted({v.subject for v in store.versions_of_id(schema_id, deleted)})

    @app.get("/schemas/ids/{schema_id}/versions")
    async def versions_of_id(schema_id: int, deleted: bool = False) -> list[dict[str, Any]]:
        return [{"subject": v.subject, "version": v.version} for v in store.versions_of_id(schema_id, deleted)]

    # --- subjects -----------------------------------------------------------------------------
    @app.get("/subjects")
    async def subjects(deleted: bool = False, subjectPrefix: str = "") -> list[str]:  # noqa: N803
        return store.subjects(deleted, subjectPrefix)

    @app.get("/subjects/{subject}/versions")
    async def versions(subject: str, deleted: bool = False) -> list[int]:
        return store.versions(subject, deleted)

    @app.post("/subjects/{subject}/versions")
    def register(subject: str, body: dict[str, Any] = _Body) -> dict[str, Any]:  # noqa: B008
        schema_str, schema_type = _schema_of(body)
        registered = store.register(subject, schema_str, schema_type)
        return {"id": registered.id, "version": registered.version, "subject": subject}

    @app.post("/subjects/{subject}")
    def lookup(subject: str, body: dict[str, Any] = _Body, deleted: bool = False) -> dict[str, Any]:  # noqa: B008
        schema_str, _ = _schema_of(body)
        return _version_body(store.lookup(subject, schema_str, deleted))

    @app.get("/subjects/{subject}/versions/{version}")
    async def get_version(subject: str, version: str, deleted: bool = False) -> dict[str, Any]:
        return _version_body(store.version(subject, version, deleted))

    @app.get("/subjects/{subject}/versions/{version}/schema")
    async def get_version_schema(subject: str, version: str) -> Response:
        return Response(store.version(subject, version).schema, media_type=MEDIA_TYPE)

    @app.get("/subjects/{subject}/versions/{version}/referencedby")
    async def referenced_by(subject: str, version: str) -> list[int]:
        store.version(subject, version)
        return []  # schema references are not supported, so nothing refers to anything

    @app.delete("/subjects/{subject}")
    def delete_subject(subject: str, permanent: bool = False) -> list[int]:
        return store.delete_subject(subject, permanent)

    @app.delete("/subjects/{subject}/versions/{version}")
    def delete_version(subject: str, version: str, permanent: bool = False) -> int:
        return store.delete_version(subject, version, permanent)

    # --- compatibility ------------------------------------------------------------------------
    @app.post("/compatibility/subjects/{subject}/versions/{version}")
    def check_version(
        subject: str,
        version: str,
        body: dict[str, Any] = _Body,  # noqa: B008
        verbose: bool = False,
    ) -> dict[str, Any]:
        schema_str, _ = _schema_of(body)
        return _verdict(store.check(subject, schema_str, version), verbose)

    @app.post("/compatibility/subjects/{subject}/versions")
    def check_all(subject: str, body: dict[str, Any] = _Body, verbose: bool = False) -> dict[str, Any]:  # noqa: B008
        schema_str, _ = _schema_of(body)
        return _verdict(store.check(subject, schema_str, None), verbose)

    # --- config and mode ----------------------------------------------------------------------
    @app.get("/config")
    async def get_config() -> dict[str, Any]:
        return {"compatibilityLevel": store.compatibility().value}

    @app.put("/config")
    def put_config(body: dict[str, Any] = _Body) -> dict[str, Any]:  # noqa: B008
        return {"compatibility": store.set_compatibility(_field(body, "compatibility")).value}

    @app.delete("/config")
    def delete_config() -> dict[str, Any]:
        return {"compatibilityLevel": store.delete_compatibility(None).value}

    @app.get("/config/{subject}")
    async def get_subject_config(subject: str, defaultToGlobal: bool = False) -> dict[str, Any]:  # noqa: N803
        level = store.subject_compatibility(subject)
        if level is None:
            if not defaultToGlobal:
                raise errors.subject_config_not_found(subject)
            level = store.compatibility()
        return {"compatibilityLevel": level.value}

    @app.put("/config/{subject}")
    def put_subject_config(subject: str, body: dict[str, Any] = _Body) -> dict[str, Any]:  # noqa: B008
        return {"compatibility": store.set_compatibility(_field(body, "compatibility"), subject).value}

    @app.delete("/config/{subject}")
    def delete_subject_config(subject: str) -> dict[str, Any]:
        return {"compatibilityLevel": store.delete_compatibility(subject).value}

    @app.get("/mode")
    async def get_mode() -> dict[str, Any]:
        return {"mode": store.mode()}

    @app.put("/mode")
    def put_mode(body: dict[str, Any] = _Body) -> dict[str, Any]:  # noqa: B008
        return {"mode": store.set_mode(_field(body, "mode"))}

    @app.get("/mode/{subject}")
    async def get_subject_mode(subject: str, defaultToGlobal: bool = False) -> dict[str, Any]:  # noqa: N803
        mode = store.subject_mode(subject)
        if mode is None:
            if not defaultToGlobal:
                raise errors.subject_mode_not_found(subject)
            mode = store.mode()
        return {"mode": mode}

    @app.put("/mode/{subject}")
    def put_subject_mode(subject: str, body: dict[str, Any] = _Body) -> dict[str, Any]:  # noqa: B008
        return {"mode": store.set_mode(_field(body, "mode"), subject)}

    @app.delete("/mode/{subject}")
    def delete_subject_mode(subject: str) -> dict[str, Any]:
        return {"mode": store.delete_mode(subject)}

    return app


def _version_body(v: Version) -> dict[str, Any]:
    return {"subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema}


def _verdict(problems: list[str], verbose: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"is_compatible": not problems}
    if verbose or problems:
        out["messages"] = problems
    return out


def _schema_of(body: dict[str, Any]) -> tuple[str, str]:
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise errors.invalid_schema('the request body needs a "schema" string')
    if body.get("references"):
        raise errors.invalid_schema("schema references are not supported by this registry")
    return schema, str(body.get("schemaType") or "AVRO")


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise errors.bad_request(f'the request body needs a "{name}" string')
    return value
