"""Compatibility levels, decided by Apache Avro's own ReaderWriterCompatibilityChecker."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import Schema


class Level(enum.Enum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:  # the new schema can read data written with the old ones
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:  # the old schemas can read data written with the new one
        return self.value.startswith(("FORWARD", "FULL"))


def incompatibilities(level: Level, candidate: Schema, existing: Sequence[tuple[int, Schema]]) -> list[str]:
    """Why `candidate` may not join a subject holding `existing` (version, schema), oldest first;
    empty when it may. Non-transitive levels compare with the latest version only."""
    if level is Level.NONE or not existing:
        return []
    against = existing if level.transitive else existing[-1:]
    problems: list[str] = []
    for version, old in against:
        if level.backward:
            problems += _check(reader=candidate, writer=old, version=version, direction="new schema reading old data")
        if level.forward:
            problems += _check(reader=old, writer=candidate, version=version, direction="old schema reading new data")
    return problems


def _check(*, reader: Schema, writer: Schema, version: int, direction: str) -> list[str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)  # type: ignore[no-untyped-call]
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted({i.name for i in result.incompatibilities}))
    messages = "; ".join(sorted(result.messages))
    locations = ", ".join(sorted(result.locations))
    return [
        f"{{errorType:'{kinds}', description:'{messages}', location:'{locations}', "
        f"checking:'{direction}', oldSchemaVersion:{version}}}"
    ]
