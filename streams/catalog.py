"""The dataflows, by name: what `shopstream streams list | run | status` and the stack know. A
dataflow is a projection module (`streams/<name>.py`: its stages, `projection(settings)`, its
settings class) run by an engine (`streams.engines`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from shopstream.domain import EventType
from streams import (
    flash_sale_price_map,
    inventory_snapshot,
    orders_by_customer,
    product_search_index,
    revenue_windows,
    serving_caches,
)
from streams.core import Projection
from streams.settings import DataflowSettings


@dataclass(frozen=True)
class DataflowSpec:
    name: str
    summary: str
    settings: type[DataflowSettings]
    projection: Callable[[Any], Projection]
    inputs: tuple[EventType, ...]
    outputs: tuple[str, ...]  # topics and Redis key patterns

    def component(self) -> str:
        """The stack component that runs it."""
        return "stream-" + self.name.replace("_", "-")


def _spec(module: ModuleType) -> DataflowSpec:
    projection = module.projection(module.SETTINGS())
    return DataflowSpec(
        module.NAME, module.SUMMARY, module.SETTINGS, module.projection, projection.inputs, module.OUTPUTS
    )


DATAFLOWS: dict[str, DataflowSpec] = {
    spec.name: spec
    for spec in map(
        _spec,
        (
            inventory_snapshot,
            revenue_windows,
            flash_sale_price_map,
            serving_caches,
            orders_by_customer,
            product_search_index,
        ),
    )
}


def dataflow(name: str) -> DataflowSpec:
    try:
        return DATAFLOWS[name]
    except KeyError:
        raise KeyError(f"no dataflow {name!r}; known: {', '.join(DATAFLOWS)}") from None
