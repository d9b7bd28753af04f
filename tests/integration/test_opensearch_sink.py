"""The OpenSearch sink on the real local OpenSearch: bulk writes into the alias `products` with
external versions (an older or equal version writes nothing), deletes as of a version, the
positions recorded after the documents and read back, and a store that lost positions refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from dev.stack.stack import Stack
from shopstream.runtime.settings import OpenSearch
from streams.core import Document
from streams.sinks.opensearch import PROGRESS_ALIAS, OpenSearchSink
from streams.sinks.redis import StoreRegressed

pytestmark = pytest.mark.stack


@pytest.fixture
def sink(stack: Stack) -> Iterator[OpenSearchSink]:
    s = OpenSearchSink(OpenSearch(url=stack.settings.opensearch.url), f"test-{uuid.uuid4().hex[:8]}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def search(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.settings.opensearch.url, timeout=30) as client:
        yield client


def body(product_id: str, name: str, version: int) -> dict[str, object]:
    return {
        "product_id": product_id,
        "sku": f"SKU-{product_id}",
        "name": name,
        "price_minor": 1_000,
        "currency": "USD",
        "flash_sales": [],
        "version": version,
        "updated_at": 1_795_000_000_000,
    }


def doc(search: httpx.Client, product_id: str) -> dict[str, object] | None:
    r = search.get(f"/products/_doc/{product_id}")
    return r.json() if r.status_code == 200 else None


def test_bulk_writes_with_external_versions_deletes_and_positions(sink: OpenSearchSink, search: httpx.Client) -> None:
    ids = [f"test-sink-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    try:
        assert sink.progress() == {}
        writes = [Document("products", i, 2, body(i, f"Kettle {n}", 2)) for n, i in enumerate(ids)]
        sink.apply(writes, {"t[0]": 10})
        assert sink.changed == 3
        found = doc(search, ids[0])
        assert found is not None and found["_version"] == 2 and found["_source"]["name"] == "Kettle 0"  # type: ignore[index]
        assert sink.progress() == {"t[0]": 10}

        # an older and an equal version write nothing (a replay); a newer one does
        sink.apply(
            [
                Document("products", ids[0], 1, body(ids[0], "Old name", 1)),
                Document("products", ids[1], 2, body(ids[1], "Same version", 2)),
                Document("products", ids[2], 3, body(ids[2], "New name", 3)),
            ],
            {"t[0]": 11},
        )
        assert (sink.changed, sink.refused) == (4, 2)
        assert doc(search, ids[0])["_source"]["name"] == "Kettle 0"  # type: ignore[index]
        assert doc(search, ids[1])["_source"]["name"] == "Kettle 1"  # type: ignore[index]
        assert doc(search, ids[2])["_source"]["name"] == "New name"  # type: ignore[index]

        # a delete as of a version: an older one does nothing, a newer one removes the document
        sink.apply([Document("products", ids[0], 1, None)], {"t[0]": 12})
        assert doc(search, ids[0]) is not None
        sink.apply([Document("products", ids[0], 5, None)], {"t[0]": 13, "t[1]": 4})
        assert doc(search, ids[0]) is None
        # and an older index action after it cannot bring the document back (the tombstone's version)
        sink.apply([Document("products", ids[0], 4, body(ids[0], "Back", 4))], {})
        assert doc(search, ids[0]) is None
        assert sink.progress() == {"t[0]": 13, "t[1]": 4}

        # a second writer of the group with older positions never moves them back
        other = OpenSearchSink(OpenSearch(url=str(search.base_url)), sink.group)
        try:
            other.apply([], {"t[0]": 3})
            assert sink.progress() == {"t[0]": 13, "t[1]": 4}
        finally:
            other.close()
    finally:
        for i in ids:
            search.delete(f"/products/_doc/{i}")
        search.delete(f"/{PROGRESS_ALIAS}/_doc/{sink.group}")


def test_a_store_that_lost_positions_is_refused(sink: OpenSearchSink, search: httpx.Client) -> None:
    sink.apply([], {"t[0]": 7})
    search.delete(f"/{PROGRESS_ALIAS}/_doc/{sink.group}").raise_for_status()  # as if it lost writes
    with pytest.raises(StoreRegressed, match="OpenSearch lost writes"):
        sink.apply([], {"t[0]": 8})
