"""The registry's state: subjects, versions, ids, compatibility and mode settings. Every change
is written to the log first and applied to memory once durable; `load()` replays the log."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from registry import errors
from shopstream.contracts.compatibility import Level, incompatibilities
from shopstream.contracts.parsing import InvalidSchema, ParsedSchema, parse

MODES = ("READWRITE", "READONLY")


class Log(Protocol):
    def replay(self) -> Any: ...
    def append(self, key: dict[str, Any], value: dict[str, Any] | None) -> None: ...


class MemoryLog:
    """A log kept in this process only: for a throw-away registry (`--storage memory`) and tests."""

    def __init__(self) -> None:
        self.records: list[tuple[dict[str, Any], dict[str, Any] | None]] = []

    def replay(self) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        return list(self.records)

    def append(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        self.records.append((key, value))


@dataclass(frozen=True)
class Version:
    subject: str
    version: int
    id: int
    schema: str
    deleted: bool = False


class SchemaStore:
    def __init__(self, log: Log, default_level: Level = Level.BACKWARD) -> None:
        self._log = log
        # writers are serialized (and hold this across the log append); readers on the event loop
        # never wait for Kafka, only for `_state`, which guards each in-memory change
        self._lock = threading.RLock()
        self._state = threading.Lock()
        self._default_level = default_level
        self._reset()

    def _reset(self) -> None:
        self._schemas: dict[int, ParsedSchema] = {}
        self._ids: dict[str, int] = {}  # canonical schema -> id
        self._max_id = 0
        self._subjects: dict[str, dict[int, Version]] = {}
        self._config: dict[str | None, Level] = {}
        self._mode: dict[str | None, str] = {}

    def load(self) -> int:
        """Rebuild the state from the log; returns how many records were read."""
        count = 0
        with self._lock:
            self._reset()
            for key, value in self._log.replay():
                self._apply(key, value)
                count += 1
        return count

    # --- schemas and subjects -------------------------------------------------------------------
    def register(self, subject: str, schema_str: str, schema_type: str = "AVRO") -> Version:
        """Register under `subject`; an already registered schema returns its existing version."""
        _check_type(schema_type)
        parsed = _parse(schema_str)
        with self._lock:
            if self.mode(subject) == "READONLY":
                raise errors.read_only(subject)
            live = self._live(subject)
            for v in live:
                if v.schema == parsed.canonical:
                    return v
            level = self.compatibility(subject)
            problems = incompatibilities(level, parsed.schema, [(v.version, self._schemas[v.id].schema) for v in live])
            if problems:
                raise errors.incompatible(subject, problems)
            schema_id = self._ids.get(parsed.canonical)
            if schema_id is None:
                # an id, once given, is kept for good (its record is never deleted): a permanent
                # delete and compaction cannot make a later schema reuse it
                schema_id = self._max_id + 1
                self._write(
                    {"keytype": "SCHEMA_ID", "id": schema_id, "magic": 0}, {"id": schema_id, "schema": parsed.canonical}
                )
            version = max(self._versions_numbers(subject), default=0) + 1
            record = Version(subject, version, schema_id, parsed.canonical)
            self._write(_schema_key(subject, version), _schema_value(record))
            return record

    def lookup(self, subject: str, schema_str: str, deleted: bool = False) -> Version:
        parsed = _parse(schema_str)
        if not self._versions(subject, deleted):
            raise errors.subject_not_found(subject)
        for v in self._versions(subject, deleted):
            if v.schema == parsed.canonical:
                return v
        raise errors.schema_not_found()

    def schema_by_id(self, schema_id: int) -> ParsedSchema:
        try:
            return self._schemas[schema_id]
        except KeyError:
            raise errors.schema_not_found(f"Schema {schema_id} not found") from None

    def versions_of_id(self, schema_id: int, deleted: bool = False) -> list[Version]:
        self.schema_by_id(schema_id)
        return [v for s in self.subjects(deleted=True) for v in self._versions(s, deleted) if v.id == schema_id]

    def subjects(self, deleted: bool = False, prefix: str = "") -> list[str]:
        with self._state:
            names = list(self._subjects)
        return sorted(s for s in names if s.startswith(prefix) and self._versions(s, deleted))

    def versions(self, subject: str, deleted: bool = False) -> list[int]:
        found = self._versions(subject, deleted)
        if not found:
            raise errors.subject_not_found(subject)
        return [v.version for v in found]

    def version(self, subject: str, version: str | int, deleted: bool = False) -> Version:
        number = _version_number(version)
        found = self._versions(subject, deleted=deleted)
        if not found:
            raise errors.subject_not_found(subject)
        if number == -1:
            return found[-1]
        for v in found:
            if v.version == number:
                return v
        raise errors.version_not_found(subject, version)

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        with self._lock:
            if self.mode(subject) == "READONLY":
                raise errors.read_only(subject)
            every = self._versions(subject, deleted=True)
            if not every:
                raise errors.subject_not_found(subject)
            live = [v for v in every if not v.deleted]
            if not permanent:
                if not live:
                    raise errors.subject_soft_deleted(subject)
                for v in live:
                    self._write(_schema_key(subject, v.version), _schema_value(v, deleted=True))
                return [v.version for v in live]
            if live:
                raise errors.subject_not_soft_deleted(subject)
            for v in every:
                self._write(_schema_key(subject, v.version), None)
            if subject in self._config:
                self._write(_config_key(subject), None)
            return [v.version for v in every]

    def delete_version(self, subject: str, version: str | int, permanent: bool = False) -> int:
        with self._lock:
            if self.mode(subject) == "READONLY":
                raise errors.read_only(subject)
            number = _version_number(version)
            every = self._versions(subject, deleted=True)
            if not every:
                raise errors.subject_not_found(subject)
            if number == -1:
                live = [v for v in every if not v.deleted]
                if not live:
                    raise errors.version_not_found(subject, version)
                number = live[-1].version
            target = next((v for v in every if v.version == number), None)
            if target is None:
                raise errors.version_not_found(subject, version)
            if not permanent:
                if target.deleted:
                    raise errors.version_soft_deleted(subject, number)
                self._write(_schema_key(subject, number), _schema_value(target, deleted=True))
            else:
                if not target.deleted:
                    raise errors.version_not_soft_deleted(subject, number)
                self._write(_schema_key(subject, number), None)
            return number

    def check(self, subject: str, schema_str: str, version: str | int | None) -> list[str]:
        """Incompatibilities of a candidate against one version (or, for None, what the subject's
        level prescribes); [] means compatible."""
        parsed = _parse(schema_str)
        level = self.compatibility(subject)
        live = self._live(subject)
        if version is not None:
            if not live:
                raise errors.subject_not_found(subject)
            target = self.version(subject, version)
            live = [target]
            level = Level[level.value.replace("_TRANSITIVE", "")]
        return incompatibilities(level, parsed.schema, [(v.version, self._schemas[v.id].schema) for v in live])

    # --- config and mode ------------------------------------------------------------------------
    def compatibility(self, subject: str | None = None) -> Level:
        if subject is not None and subject in self._config:
            return self._config[subject]
        return self._config.get(None, self._default_level)

    def subject_compatibility(self, subject: str) -> Level | None:
        return self._config.get(subject)

    def set_compatibility(self, level: str, subject: str | None = None) -> Level:
        try:
            parsed = Level[str(level).upper()]
        except KeyError:
            raise errors.invalid_compatibility(level) from None
        with self._lock:
            self._write(_config_key(subject), {"compatibilityLevel": parsed.value})
        return parsed

    def delete_compatibility(self, subject: str | None) -> Level:
        with self._lock:
            previous = self._config.get(subject)
            if subject is not None and previous is None:
                raise errors.subject_config_not_found(subject)
            self._write(_config_key(subject), None)
            return previous or self._default_level

    def mode(self, subject: str | None = None) -> str:
        if subject is not None and subject in self._mode:
            return self._mode[subject]
        return self._mode.get(None, "READWRITE")

    def subject_mode(self, subject: str) -> str | None:
        return self._mode.get(subject)

    def set_mode(self, mode: str, subject: str | None = None) -> str:
        value = str(mode).upper()
        if value not in MODES:
            raise errors.invalid_mode(mode)
        with self._lock:
            self._write(_mode_key(subject), {"mode": value})
        return value

    def delete_mode(self, subject: str) -> str:
        with self._lock:
            previous = self._mode.get(subject)
            if previous is None:
                raise errors.subject_mode_not_found(subject)
            self._write(_mode_key(subject), None)
            return previous

    # --- internals ------------------------------------------------------------------------------
    def _versions(self, subject: str, deleted: bool = False) -> list[Version]:
        with self._state:
            versions = dict(self._subjects.get(subject, {}))
        return [versions[n] for n in sorted(versions) if deleted or not versions[n].deleted]

    def _versions_numbers(self, subject: str) -> list[int]:
        return [v.version for v in self._versions(subject, deleted=True)]

    def _live(self, subject: str) -> list[Version]:
        return self._versions(subject, deleted=False)

    def _write(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        try:
            self._log.append(key, value)
        except errors.RegistryError:
            # the write may or may not be in the log: believe the log, not memory
            self.load()
            raise
        self._apply(key, value)

    def _apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        parsed = _parse(value["schema"]) if value is not None and "schema" in value else None
        with self._state:
            self._apply_parsed(key, value, parsed)

    def _apply_parsed(self, key: dict[str, Any], value: dict[str, Any] | None, parsed: ParsedSchema | None) -> None:
        kind, subject = key.get("keytype"), key.get("subject")
        if kind == "SCHEMA_ID":
            assert value is not None and parsed is not None
            schema_id = int(value["id"])
            self._schemas.setdefault(schema_id, parsed)
            self._ids.setdefault(parsed.canonical, schema_id)
            self._max_id = max(self._max_id, schema_id)
        elif kind == "SCHEMA":
            assert subject is not None
            if value is None:
                self._subjects.get(subject, {}).pop(int(key["version"]), None)
                if not self._subjects.get(subject):
                    self._subjects.pop(subject, None)
                return
            record = Version(
                subject, int(value["version"]), int(value["id"]), value["schema"], bool(value.get("deleted", False))
            )
            if record.id not in self._schemas and parsed is not None:
                self._schemas[record.id] = parsed
                self._ids.setdefault(parsed.canonical, record.id)
            self._max_id = max(self._max_id, record.id)
            self._subjects.setdefault(subject, {})[record.version] = record
        elif kind == "CONFIG":
            if value is None:
                self._config.pop(subject, None)
            else:
                self._config[subject] = Level[value["compatibilityLevel"]]
        elif kind == "MODE":
            if value is None:
                self._mode.pop(subject, None)
            else:
                self._mode[subject] = value["mode"]


def _check_type(schema_type: str) -> None:
    if schema_type.upper() != "AVRO":
        raise errors.invalid_schema(f"schemaType {schema_type} is not supported by this registry (AVRO only)")


def _version_number(version: str | int) -> int:
    if str(version).lower() == "latest":
        return -1
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise errors.invalid_version(version) from None
    if number == -1 or 1 <= number <= 2**31 - 1:
        return number
    raise errors.invalid_version(version)


def _schema_key(subject: str, version: int) -> dict[str, Any]:
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def _schema_value(v: Version, deleted: bool = False) -> dict[str, Any]:
    return {"subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema, "deleted": deleted}


def _config_key(subject: str | None) -> dict[str, Any]:
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


def _mode_key(subject: str | None) -> dict[str, Any]:
    return {"keytype": "MODE", "subject": subject, "magic": 0}


def _parse(schema_str: str) -> ParsedSchema:
    """A malformed schema is the registry's 42201, carrying the parser's message."""
    try:
        return parse(schema_str)
    except InvalidSchema as exc:
        raise errors.invalid_schema(exc.message) from exc
