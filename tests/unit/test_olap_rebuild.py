"""The OLAP landing's rebuild, what needs no store: the identity each table's parity is computed
by is the table's own sorting key (what ReplacingMergeTree keeps one row of), the columns it
hashes are the table's, the vector goes into SQL only as topic names and numbers, a generation
survives its JSON record, and a generation's tables say it in their comment."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from olap.rebuild import Generation, RebuildError, _map, database, key, split
from olap.tables import COLUMNS, IDENTITY, ddl


def test_each_tables_identity_is_its_sorting_key_and_hashes_its_own_columns() -> None:
    statements = ddl()
    assert set(IDENTITY) == set(COLUMNS)
    for table, (ident, order, says) in IDENTITY.items():
        create = next(s for s in statements if f"raw.{table} (" in s)
        sorting = re.search(r"ORDER BY \(([^)]*)\)", create)
        assert sorting is not None and tuple(c.strip() for c in sorting.group(1).split(",")) == ident, table
        assert set(ident) | set(says) | set(order) <= set(COLUMNS[table]) | {"_offset"}
        assert not {"_topic", "_partition", "_offset", "_landed_at"} & set(says), (
            "where a row came from is not what it says"
        )
        assert set(ident) <= set(says)


def test_a_generations_tables_are_made_in_its_database_with_its_comment() -> None:
    statements = ddl(database(7), 7)
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS raw_r7"
    tables = [s for s in statements[1:]]
    assert len(tables) == len(COLUMNS)
    assert all("raw_r7." in s and s.endswith("COMMENT 'shopstream generation 7'") for s in tables)
    assert not any("COMMENT 'shopstream" in s for s in ddl())  # the first landing's tables: generation 0


positions = st.dictionaries(
    st.tuples(st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True), st.integers(0, 63)).map(lambda t: key(*t)),
    st.integers(0, 2**63),
    max_size=20,
)


@given(positions)
def test_the_vector_is_a_map_literal_of_topic_names_and_numbers(until: dict[str, int]) -> None:
    literal = _map(until)
    assert literal.endswith("::Map(String, UInt64)")
    for position, offset in until.items():
        assert f"'{position}', {offset}" in literal
        assert split(position)[1] == int(position.rpartition(":")[2])


@pytest.mark.parametrize("position", ["a'b:0", "topic", "t:0) OR (1", "t:x"])
def test_anything_else_in_a_vector_is_refused(position: str) -> None:
    with pytest.raises(RebuildError):
        _map({position: 1})


def test_a_generation_survives_its_record() -> None:
    g = Generation(3, "built", {"cdc.public.orders:0": 12}, 1.5, {"read": 12}, True, 2, None, 500)
    assert Generation.of(g.to_json()) == g
