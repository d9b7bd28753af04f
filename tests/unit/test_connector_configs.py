from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors import load_config
from dev.stack import StackSettings


def write(tmp_path: Path, body: object) -> Path:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(body))
    return path


def test_placeholders_are_filled_from_settings(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path, postgres={"port": 15432, "password": "s3cret"})
    path = write(
        tmp_path,
        {
            "name": "cdc-${tag}",
            "config": {
                "database.port": "${postgres_port}",
                "database.password": "${postgres_password}",
                "tasks.max": 1,
            },
        },
    )
    config = load_config(path, settings.connector_values(), tag="x")
    assert config.name == "cdc-x"
    assert config.config == {"database.port": "15432", "database.password": "s3cret", "tasks.max": "1"}


def test_an_unknown_placeholder_is_an_error_listing_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "n", "config": {"database.port": "${pg_port}"}})
    with pytest.raises(ValueError, match=r"unknown placeholder \$\{pg_port\}.*postgres_port"):
        load_config(path, StackSettings(home=tmp_path).connector_values())


@pytest.mark.parametrize("body", ['{"config": {}}', '{"name": "x"}', "[1]", "not json"])
def test_a_malformed_file_is_an_error_naming_it(tmp_path: Path, body: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(body)
    with pytest.raises(ValueError, match="bad.json"):
        load_config(path, StackSettings(home=tmp_path).connector_values())


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_setting_values_are_inserted_literally(password: str) -> None:
    settings = StackSettings(postgres={"password": password})
    path = Path(__file__).parent.parent / "integration" / "connectors" / "cdc-smoke.json"
    config = load_config(path, settings.connector_values(), run="r1")
    assert config.config["database.password"] == password  # a "$" in a value is never re-expanded
