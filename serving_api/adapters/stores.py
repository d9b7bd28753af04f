"""What the readers of the serving stores (Cassandra's orders_by_customer, OpenSearch's products)
raise when their store does not answer: a 503 problem naming the store (`store`), never a silent
fallback to Postgres."""

from __future__ import annotations

from shopstream.domain import Unavailable


class StoreUnavailable(Unavailable):
    code = "store-unavailable"
    title = "A serving store is unavailable"
