"""`python -m streams NAME [--engine quix|bytewax]`: run one dataflow in the foreground until
stopped — how the local stack and the compose services run each (`shopstream streams run NAME` is
the same, from the CLI)."""

from __future__ import annotations

import argparse
import logging

from shopstream.runtime.topics import create_event_topics
from streams.catalog import DATAFLOWS, dataflow
from streams.engines import ENGINES
from streams.engines import engine as make_engine

log = logging.getLogger("shopstream.streams")


def run(name: str, engine: str | None = None) -> None:
    """Raises KeyError for an unknown dataflow, ValueError for an unknown engine."""
    spec = dataflow(name)
    if engine is not None and engine not in ENGINES:
        raise ValueError(f"no engine {engine!r}; known: {', '.join(ENGINES)}")
    settings = spec.settings()
    chosen = engine or settings.engine
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # the event topics get their partitions from us, not from an engine's auto-creation
    created = create_event_topics(settings.kafka.bootstrap, settings.topic_prefix)
    if created:
        log.info(created)
    runner = make_engine(chosen, spec.projection(settings), settings)
    if chosen == "quix":
        guarantee = (
            f"{'exactly-once' if settings.exactly_once else 'at-least-once'}, {settings.commit_interval}s commits"
        )
    else:
        guarantee = f"snapshots every {settings.epoch_interval}s, idempotent sinks"
    log.info(
        "%s on %s: group %s, %s, dead letters to %s",
        name,
        chosen,
        settings.group(name),
        guarantee,
        settings.dead_letter(name),
    )
    runner.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m streams", description="Run one dataflow until stopped.")
    parser.add_argument("name", choices=sorted(DATAFLOWS))
    parser.add_argument("--engine", choices=sorted(ENGINES), help="default: the dataflow's ENGINE setting")
    args = parser.parse_args()
    run(args.name, args.engine)


if __name__ == "__main__":
    main()
