"""Each compatibility level against a table of schema evolutions, decided by Apache Avro's own
checker through the registry's store (no I/O: the store's log is kept in memory)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry import RegistryError, SchemaStore
from registry.store import MemoryLog


def record(*fields: dict[str, Any]) -> str:
    return json.dumps({"type": "record", "name": "Thing", "namespace": "t", "fields": list(fields)})


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


COLOR = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}
COLOR_PLUS = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}

# evolution: (old schema, new schema)
EVOLUTIONS = {
    "add field with default": (record(field("a", "int")), record(field("a", "int"), field("b", "string", default="x"))),
    "add field without default": (record(field("a", "int")), record(field("a", "int"), field("b", "string"))),
    "remove field": (record(field("a", "int"), field("b", "string")), record(field("a", "int"))),
    "remove field that had a default": (
        record(field("a", "int"), field("b", "string", default="x")),
        record(field("a", "int")),
    ),
    "widen int to long": (record(field("a", "int")), record(field("a", "long"))),
    "rename with alias": (record(field("a", "int")), record(field("z", "int", aliases=["a"]))),
    "rename without alias": (record(field("a", "int")), record(field("z", "int"))),
    "enum symbol added": (record(field("c", COLOR)), record(field("c", COLOR_PLUS))),
}

# level -> evolution -> may the new schema be registered after the old one?
EXPECTED = {
    "NONE": dict.fromkeys(EVOLUTIONS, True),
    "BACKWARD": {
        "add field with default": True,
        "add field without default": False,
        "remove field": True,
        "remove field that had a default": True,
        "widen int to long": True,
        "rename with alias": True,
        "rename without alias": False,
        "enum symbol added": True,
    },
    "FORWARD": {
        "add field with default": True,
        "add field without default": True,
        "remove field": False,
        "remove field that had a default": True,
        "widen int to long": False,
        "rename with alias": False,
        "rename without alias": False,
        "enum symbol added": False,
    },
}
EXPECTED["FULL"] = {e: EXPECTED["BACKWARD"][e] and EXPECTED["FORWARD"][e] for e in EVOLUTIONS}
for level in ("BACKWARD", "FORWARD", "FULL"):  # with two versions, transitive = non-transitive
    EXPECTED[f"{level}_TRANSITIVE"] = EXPECTED[level]

CASES = [(level, evolution, ok) for level, verdicts in EXPECTED.items() for evolution, ok in verdicts.items()]


@pytest.mark.parametrize(("level", "evolution", "allowed"), CASES, ids=[f"{lv}-{ev}" for lv, ev, _ in CASES])
def test_evolution_verdicts(level: str, evolution: str, allowed: bool) -> None:
    store = SchemaStore(MemoryLog())
    store.set_compatibility(level, "s")
    old, new = EVOLUTIONS[evolution]
    store.register("s", old)
    if allowed:
        assert store.register("s", new).version == 2
    else:
        with pytest.raises(RegistryError) as refused:
            store.register("s", new)
        assert refused.value.error_code == 409
        assert store.versions("s") == [1]


def test_transitive_levels_check_every_version_not_only_the_latest() -> None:
    v1 = record(field("a", "int"))
    v2 = record(field("a", "int"), field("b", "string", default="x"))
    v3 = record(field("a", "int"), field("b", "string"))  # fine after v2, not after v1 (no b there)
    for level, allowed in (("BACKWARD", True), ("BACKWARD_TRANSITIVE", False)):
        store = SchemaStore(MemoryLog())
        store.set_compatibility(level, "s")
        store.register("s", v1)
        store.register("s", v2)
        if allowed:
            assert store.register("s", v3).version == 3
        else:
            with pytest.raises(RegistryError, match="oldSchemaVersion:1"):
                store.register("s", v3)


def test_an_incompatible_schema_is_refused_naming_the_breaking_field() -> None:
    store = SchemaStore(MemoryLog())
    store.register("s", record(field("a", "int")))
    with pytest.raises(RegistryError) as refused:
        store.register("s", record(field("a", "int"), field("price_minor", "long")))
    assert refused.value.http_status == 409
    assert "price_minor" in refused.value.message
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in refused.value.message.upper()
