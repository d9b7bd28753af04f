from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from serving_api.services.idempotency import request_hash

bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)


@given(bodies)
def test_the_same_request_hashes_the_same_whatever_the_key_order(body: object) -> None:
    assert request_hash("POST", "/api/v1/orders", body) == request_hash("POST", "/api/v1/orders", body)
    if isinstance(body, dict):
        reordered = dict(reversed(list(body.items())))
        assert request_hash("POST", "/x", body) == request_hash("POST", "/x", reordered)


def test_a_different_body_path_or_method_hashes_differently() -> None:
    base = request_hash("POST", "/api/v1/orders", {"items": [{"productId": "P1", "qty": 1}]})
    assert base != request_hash("POST", "/api/v1/orders", {"items": [{"productId": "P1", "qty": 2}]})
    assert base != request_hash("POST", "/api/v1/carts/x/checkout", {"items": [{"productId": "P1", "qty": 1}]})
    assert base != request_hash("PUT", "/api/v1/orders", {"items": [{"productId": "P1", "qty": 1}]})
