"""The dataflows, by name: what `shopstream streams list | run | status` and the stack know."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from shopstream.domain import EventType
from streams import flash_sale_price_map, inventory_snapshot, revenue_windows, serving_caches
from streams.runtime import Dataflow
from streams.settings import DataflowSettings


@dataclass(frozen=True)
class DataflowSpec:
    name: str
    summary: str
    settings: type[DataflowSettings]
    build: Callable[[Dataflow], None]
    inputs: tuple[EventType, ...]
    outputs: tuple[str, ...]  # topics and Redis key patterns

    def component(self) -> str:
        """The stack component that runs it."""
        return "stream-" + self.name.replace("_", "-")


def _spec(module: ModuleType, inputs: tuple[EventType, ...], outputs: tuple[str, ...]) -> DataflowSpec:
    return DataflowSpec(module.NAME, module.SUMMARY, module.SETTINGS, module.build, inputs, outputs)


DATAFLOWS: dict[str, DataflowSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            inventory_snapshot,
            (inventory_snapshot.SOURCE,),
            (
                inventory_snapshot.SNAPSHOT.topic,
                "redis inventory:{productId}",
                "redis top_products:ordered, inventory:low",
            ),
        ),
        _spec(
            revenue_windows,
            (revenue_windows.PAID, revenue_windows.CANCELED, revenue_windows.FULFILLED),
            (revenue_windows.WINDOW.topic, "redis revenue:{1m|1d}:{currency}:{start}", "redis revenue:currencies"),
        ),
        _spec(
            flash_sale_price_map,
            (flash_sale_price_map.STARTED, flash_sale_price_map.ENDED),
            ("redis flash_price:{productId}",),
        ),
        _spec(
            serving_caches,
            (serving_caches.PRODUCT_UPDATED, *serving_caches.ORDER_EVENTS),
            ("redis DEL product:{id} gql:product:{id}", "redis product:{id}:floor", "redis order_status:{orderId}"),
        ),
    )
}


def dataflow(name: str) -> DataflowSpec:
    try:
        return DATAFLOWS[name]
    except KeyError:
        raise KeyError(f"no dataflow {name!r}; known: {', '.join(DATAFLOWS)}") from None


def start(name: str, settings: DataflowSettings | None = None) -> Dataflow:
    """Build a dataflow's application from its settings (the environment by default)."""
    spec = dataflow(name)
    flow = Dataflow(spec.name, settings or spec.settings())
    spec.build(flow)
    flow.built()
    return flow
