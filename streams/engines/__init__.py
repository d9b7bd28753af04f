"""Engines of the projections kernel: adapters that run any projection (`streams.core`).

- `quix`: Quix Streams, exactly-once (Kafka transactions), one record at a time;
- `bytewax`: Bytewax 0.21, batch-first, recovery snapshots, at least once made exact by the
  idempotent sinks.

Each is imported only when chosen (an engine's import is not free, and PyFlink's lives in
another environment)."""

from __future__ import annotations

from typing import Any, Protocol

from streams.core import Projection
from streams.settings import DataflowSettings

ENGINES = ("quix", "bytewax")

__all__ = ["ENGINES", "Engine", "engine"]


class Engine(Protocol):
    name: str
    dead_letters: int

    def run(self) -> None: ...

    def close(self) -> None: ...


def engine(name: str, projection: Projection, settings: DataflowSettings) -> Engine:
    """The engine `name` set up to run `projection` (not started)."""
    made: Any
    if name == "quix":
        from streams.engines.quix import QuixEngine

        made = QuixEngine(projection, settings)
    elif name == "bytewax":
        from streams.engines.bytewax import BytewaxEngine

        made = BytewaxEngine(projection, settings)
    else:
        raise ValueError(f"no engine {name!r}; known: {', '.join(ENGINES)}")
    return made  # type: ignore[no-any-return]
