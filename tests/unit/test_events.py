from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopstream.domain import EVENT_TYPES, EventType, event_type


def test_the_catalogue_has_the_eight_authoritative_event_types_plus_ours() -> None:
    domain_events = [e for e in EVENT_TYPES if not e.derived]
    assert len(domain_events) == 9  # the spec's eight and flash_sale.ended
    assert len({e.name for e in EVENT_TYPES}) == len(EVENT_TYPES)
    assert all(e.compacted for e in EVENT_TYPES if e.derived)
    assert event_type("ecommerce.order.order.paid.v1").partition_key == "orderId"
    assert event_type("ecommerce.inventory.stock.adjusted.v1").subject == "ecommerce.inventory.stock.adjusted.v1-value"


def test_an_unknown_event_type_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="ecommerce.order.order.created.v1"):
        event_type("ecommerce.order.order.shipped.v1")


@pytest.mark.parametrize(
    "bad",
    [
        "order.created",
        "ecommerce.order.order.created",
        "ecommerce.Order.o.c.v1",
        "ecommerce.order.order.created.v0",
        "ecommerce.order.order.created.v1 ",
    ],
)
def test_malformed_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not ecommerce"):
        EventType(bad, "x", "id")


segment = st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True)


@given(segment, segment, segment, st.integers(min_value=1, max_value=999))
def test_well_formed_names_parse_back(context: str, aggregate: str, event: str, major: int) -> None:
    e = EventType(f"ecommerce.{context}.{aggregate}.{event}.v{major}", "p", "key")
    assert (e.context, e.major_version, e.topic) == (context, major, e.name)
