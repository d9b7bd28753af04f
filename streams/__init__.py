"""Dataflows: the projections kernel (`streams.core`), one module per projection
(`inventory_snapshot`, `revenue_windows`, `flash_sale_price_map`, `serving_caches`,
`orders_by_customer`, `product_search_index`: pure stages over typed domain events), the sinks
that apply their writes (`streams.sinks`: Redis, Cassandra, OpenSearch, projection topics) and
the engines that run any of them (`streams.engines`: Quix Streams, Bytewax).

Importing this package stays cheap (the stack lists the dataflows without loading an engine);
`streams.catalog` has the dataflows themselves."""

# the dataflows the stack runs, one component each (`streams.catalog.DATAFLOWS` has them all)
DATAFLOW_NAMES = (
    "inventory_snapshot",
    "revenue_windows",
    "flash_sale_price_map",
    "serving_caches",
    "orders_by_customer",
    "product_search_index",
)
