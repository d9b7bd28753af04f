"""The contracts in schemas/: static auditor checks, and the generated AsyncAPI catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from shopstream.contracts.catalog import render
from shopstream.contracts.checks import static_problems
from shopstream.contracts.files import SCHEMAS_DIR, SchemaFile, load_schema_files
from shopstream.domain import EVENT_TYPES


def test_there_is_one_schema_per_event_type_and_each_passes_the_static_checks() -> None:
    files = load_schema_files()
    assert {f.topic for f in files} == {e.name for e in EVENT_TYPES}
    for f in files:
        assert static_problems(f) == [], f.path.name


def variant(tmp_path: Path, edit: object) -> SchemaFile:
    source = SCHEMAS_DIR / "ecommerce.order.order.paid.v1.avsc"
    doc = json.loads(source.read_text())
    edit(doc)  # type: ignore[operator]
    path = tmp_path / source.name
    path.write_text(json.dumps(doc))
    return SchemaFile(path, path.read_text())


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["fields"][0].pop("doc"), "OrderPaid.eventId: no doc"),
        (lambda d: d["fields"][8]["type"]["fields"][3]["type"].pop("doc"), "(record Money): no doc"),
        (
            lambda d: d["fields"][8]["type"]["fields"].append({"name": "fee", "type": "double", "doc": "x"}),
            "payload.fee: float/double",
        ),
        (lambda d: d.update(namespace="ecommerce.order"), "namespace 'ecommerce.order' should be"),
        (lambda d: d["fields"][8]["type"]["fields"].pop(0), "lacks the partition key field 'orderId'"),
        (lambda d: d["fields"].pop(1), "envelope fields should be"),
        (lambda d: d.update(type="recrd"), "does not parse"),
    ],
)
def test_static_checks_catch_each_rule(tmp_path: Path, edit: object, expected: str) -> None:
    problems = static_problems(variant(tmp_path, edit))
    assert any(expected in p for p in problems), problems


def test_the_asyncapi_catalog_is_up_to_date_and_covers_every_topic() -> None:
    checked_in = (SCHEMAS_DIR / "asyncapi.yaml").read_text()
    assert checked_in == render(load_schema_files()), "run `shopstream schemas catalog`"
    doc = yaml.safe_load(checked_in)
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == {e.name for e in EVENT_TYPES}
    created = doc["components"]["messages"]["OrderCreated"]
    assert created["payload"]["schema"] == json.loads(
        (SCHEMAS_DIR / "ecommerce.order.order.created.v1.avsc").read_text()
    )
    for op in doc["operations"].values():
        channel = op["channel"]["$ref"].split("/")[-1]
        assert channel in doc["channels"]
