"""The registry's behaviour (Confluent semantics and error codes) on its in-memory log."""

from __future__ import annotations

import json

import pytest

from registry import RegistryError, SchemaStore
from registry.store import MemoryLog

A = json.dumps({"type": "record", "name": "A", "fields": [{"name": "x", "type": "int"}]})
A_SPACED = json.dumps({"type": "record", "name": "A", "fields": [{"name": "x", "type": "int"}]}, indent=4)
A2 = json.dumps(
    {
        "type": "record",
        "name": "A",
        "fields": [{"name": "x", "type": "int"}, {"name": "y", "type": "int", "default": 0}],
    }
)


def code(exc: pytest.ExceptionInfo[RegistryError]) -> int:
    return exc.value.error_code


def test_the_same_schema_gets_the_same_id_twice_and_across_subjects() -> None:
    store = SchemaStore(MemoryLog())
    first = store.register("one-value", A)
    assert (first.id, first.version) == (1, 1)
    assert store.register("one-value", A_SPACED) == first  # same canonical form: no new version
    other = store.register("two-value", A)
    assert (other.id, other.version) == (1, 1)
    assert store.register("one-value", A2).id == 2
    assert store.versions("one-value") == [1, 2]
    assert store.version("one-value", "latest").id == 2
    assert [(v.subject, v.version) for v in store.versions_of_id(1)] == [("one-value", 1), ("two-value", 1)]


def test_replaying_the_log_rebuilds_the_same_state() -> None:
    log = MemoryLog()
    store = SchemaStore(log)
    store.register("s", A)
    store.register("s", A2)
    store.set_compatibility("FULL", "s")
    store.delete_version("s", 1)
    again = SchemaStore(log)
    assert again.load() == len(log.records)
    assert again.versions("s") == [2]
    assert again.versions("s", deleted=True) == [1, 2]
    assert again.compatibility("s").value == "FULL"
    assert again.register("t", A).id == 1  # ids are stable


def test_not_found_codes() -> None:
    store = SchemaStore(MemoryLog())
    with pytest.raises(RegistryError) as e:
        store.versions("nope")
    assert code(e) == 40401 and e.value.http_status == 404
    store.register("s", A)
    with pytest.raises(RegistryError) as e:
        store.version("s", 7)
    assert code(e) == 40402
    with pytest.raises(RegistryError) as e:
        store.schema_by_id(99)
    assert code(e) == 40403
    with pytest.raises(RegistryError) as e:
        store.lookup("s", A2)
    assert code(e) == 40403
    with pytest.raises(RegistryError) as e:
        store.version("s", "first")
    assert code(e) == 42202


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        '{"type": "record"}',
        '{"type": "nope"}',
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "strin"}]}',
    ],
)
def test_a_malformed_schema_is_42201_with_the_parsers_message(bad: str) -> None:
    with pytest.raises(RegistryError) as e:
        SchemaStore(MemoryLog()).register("s", bad)
    assert code(e) == 42201 and e.value.http_status == 422
    assert "Invalid schema" in e.value.message and len(e.value.message) > len("Invalid schema: ")


def test_only_avro_is_accepted() -> None:
    with pytest.raises(RegistryError) as e:
        SchemaStore(MemoryLog()).register("s", '{"type": "object"}', "JSON")
    assert code(e) == 42201


def test_soft_then_permanent_delete_of_a_subject() -> None:
    store = SchemaStore(MemoryLog())
    store.register("s", A)
    store.register("s", A2)
    with pytest.raises(RegistryError) as e:
        store.delete_subject("s", permanent=True)
    assert code(e) == 40405
    assert store.delete_subject("s") == [1, 2]
    assert store.subjects() == [] and store.subjects(deleted=True) == ["s"]
    with pytest.raises(RegistryError) as e:
        store.delete_subject("s")
    assert code(e) == 40404
    assert store.delete_subject("s", permanent=True) == [1, 2]
    assert store.subjects(deleted=True) == []
    with pytest.raises(RegistryError) as e:
        store.delete_subject("s")
    assert code(e) == 40401
    # re-registering after a soft delete continues the version numbers
    store.register("u", A)
    store.delete_subject("u")
    assert store.register("u", A2).version == 2


def test_soft_then_permanent_delete_of_a_version() -> None:
    store = SchemaStore(MemoryLog())
    store.register("s", A)
    store.register("s", A2)
    with pytest.raises(RegistryError) as e:
        store.delete_version("s", 2, permanent=True)
    assert code(e) == 40407
    assert store.delete_version("s", "latest") == 2
    with pytest.raises(RegistryError) as e:
        store.delete_version("s", 2)
    assert code(e) == 40406
    assert store.version("s", "latest").version == 1
    assert store.delete_version("s", 2, permanent=True) == 2
    assert store.versions("s", deleted=True) == [1]


def test_config_global_and_per_subject() -> None:
    store = SchemaStore(MemoryLog())
    assert store.compatibility().value == "BACKWARD"
    store.set_compatibility("full")
    assert store.compatibility("any").value == "FULL"
    store.set_compatibility("NONE", "s")
    assert store.compatibility("s").value == "NONE"
    assert store.delete_compatibility("s").value == "NONE"
    assert store.compatibility("s").value == "FULL"
    with pytest.raises(RegistryError) as e:
        store.delete_compatibility("s")
    assert code(e) == 40408
    with pytest.raises(RegistryError) as e:
        store.set_compatibility("SIDEWAYS")
    assert code(e) == 42203


def test_read_only_mode_refuses_registration() -> None:
    store = SchemaStore(MemoryLog())
    store.register("s", A)
    store.set_mode("READONLY", "s")
    with pytest.raises(RegistryError) as e:
        store.register("s", A2)
    assert code(e) == 42205
    store.register("t", A2)  # other subjects are unaffected
    store.set_mode("READWRITE", "s")
    assert store.register("s", A2).version == 2
    with pytest.raises(RegistryError) as e:
        store.set_mode("WRITEONLY")
    assert code(e) == 42204


def compacted(log: MemoryLog) -> MemoryLog:
    """What Kafka's log compaction leaves: the last value of each key, tombstoned keys gone."""
    last: dict[str, tuple[dict[str, object], dict[str, object] | None]] = {}
    for key, value in log.records:
        last[json.dumps(key, sort_keys=True)] = (key, value)
    out = MemoryLog()
    out.records = [(k, v) for k, v in last.values() if v is not None]
    return out


def test_an_id_is_never_given_to_another_schema_even_after_permanent_delete_and_compaction() -> None:
    log = MemoryLog()
    store = SchemaStore(log)
    assert store.register("s", A).id == 1
    assert store.register("s", A2).id == 2
    store.delete_version("s", 2)
    store.delete_version("s", 2, permanent=True)
    again = SchemaStore(compacted(log))
    again.load()
    assert again.schema_by_id(2).canonical == store.schema_by_id(2).canonical  # old records still decode
    other = json.dumps({"type": "record", "name": "C", "fields": [{"name": "z", "type": "string"}]})
    assert again.register("t", other).id == 3


def test_read_only_mode_also_refuses_deletes() -> None:
    store = SchemaStore(MemoryLog())
    store.register("s", A)
    store.set_mode("READONLY")
    for delete in (lambda: store.delete_subject("s"), lambda: store.delete_version("s", 1)):
        with pytest.raises(RegistryError) as e:
            delete()
        assert code(e) == 42205
    assert store.versions("s") == [1]


def test_reads_while_another_thread_registers_never_fail() -> None:
    import threading

    store = SchemaStore(MemoryLog())
    failures: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                for subject in store.subjects():
                    store.versions(subject)
                store.versions_of_id(1)
            except RegistryError:
                pass
            except BaseException as exc:  # noqa: BLE001 - any other error is the bug looked for
                failures.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(400):
            store.register(f"subject-{i}", A)
    finally:
        stop.set()
        reader.join()
    assert failures == []
