"""The compiled codecs agree with fastavro byte for byte and value for value, on random records
of every schema in schemas/ and on schemas built to cover every construct the compiler takes."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopstream.contracts.files import load_schema_files
from shopstream.serde.codegen import Unsupported, compile_schema

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TIMES = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


def records(schema: Any, named: dict[str, Any] | None = None, ns: str = "") -> st.SearchStrategy[Any]:
    named = {} if named is None else named
    if isinstance(schema, list):
        return st.one_of(*[records(b, named, ns) for b in schema])
    if isinstance(schema, str):
        simple = {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": INT32,
            "long": INT64,
            "string": st.text(max_size=80),
            "bytes": st.binary(max_size=80),
        }
        if schema in simple:
            return simple[schema]
        return st.deferred(lambda: records(named.get(schema) or named[f"{ns}.{schema}"], named, ns))
    kind, logical = schema["type"], schema.get("logicalType")
    if logical == "timestamp-millis":
        return TIMES.map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
    if logical == "uuid":
        return st.uuids().map(str)
    if kind in ("record", "enum"):
        ns = schema.get("namespace", ns)
        named[f"{ns}.{schema['name']}" if ns else schema["name"]] = schema
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: records(f["type"], named, ns) for f in schema["fields"]})
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(records(schema["items"], named, ns), max_size=5)
    if kind == "map":
        return st.dictionaries(st.text(max_size=10), records(schema["values"], named, ns), max_size=5)
    return records(kind, named, ns)


def fastavro_round_trip(schema: dict[str, Any], record: Any) -> tuple[bytes, Any]:
    parsed = fastavro.parse_schema(schema)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue(), fastavro.schemaless_reader(io.BytesIO(out.getvalue()), parsed, None)


COVERAGE = {
    "type": "record",
    "name": "Everything",
    "namespace": "t",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "s", "type": "string"},
        {"name": "raw", "type": "bytes"},
        {"name": "maybe", "type": ["null", "long"]},
        {"name": "maybe_after", "type": ["string", "null"]},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]}},
        {"name": "inners", "type": {"type": "array", "items": "Inner"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    ],
}
SCHEMAS = [COVERAGE, *[f.json() for f in load_schema_files()]]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[s["name"] for s in SCHEMAS])
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_compiled_codec_matches_fastavro(schema: dict[str, Any], data: st.DataObject) -> None:
    record = data.draw(records(schema))
    encode, decode = compile_schema(schema)
    expected_bytes, expected_value = fastavro_round_trip(schema, record)
    body = encode(record)
    assert body == expected_bytes
    value, end = decode(body, 0)
    assert end == len(body)
    assert value == expected_value


def logical_as_raw(value: Any) -> Any:
    """fastavro's decoded value with its logical types as a raw decoder gives them: a datetime as
    epoch ms, a UUID as its text."""
    if isinstance(value, dict):
        return {k: logical_as_raw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [logical_as_raw(v) for v in value]
    if isinstance(value, datetime):
        return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


@pytest.mark.parametrize("schema", SCHEMAS, ids=[s["name"] for s in SCHEMAS])
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_raw_decoder_gives_fastavros_values_with_epoch_ms_and_uuid_text(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    record = data.draw(records(schema))
    _, decode = compile_schema(schema, raw=True)
    body, expected = fastavro_round_trip(schema, record)
    value, end = decode(body, 0)
    assert end == len(body)
    assert value == logical_as_raw(expected)


def test_a_raw_decoder_refuses_a_uuid_field_that_is_not_shaped_like_one() -> None:
    uuid_field = {"name": "id", "type": {"type": "string", "logicalType": "uuid"}}
    schema = {"type": "record", "name": "U", "fields": [uuid_field]}
    encode, decode = compile_schema(schema, raw=True)
    with pytest.raises(ValueError, match="not a uuid"):
        decode(encode({"id": "not-a-uuid"}), 0)


@pytest.mark.parametrize(
    "field_type",
    [
        ["int", "string"],
        ["null", "int", "string"],
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        "float",
    ],
)
def test_what_the_compiler_does_not_take_is_refused_for_fastavro_to_handle(field_type: Any) -> None:
    with pytest.raises(Unsupported):
        compile_schema({"type": "record", "name": "R", "fields": [{"name": "x", "type": field_type}]})
