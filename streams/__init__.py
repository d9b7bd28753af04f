"""Dataflows: pure per-record logic (in `shopstream.domain`) run by Quix Streams (default),
Bytewax and PyFlink (the latter from its own environment, `streams/flink/requirements.txt`).

Importing this package stays cheap (the stack lists the dataflows without loading Quix);
`streams.catalog` has the dataflows themselves."""

# the dataflows the stack runs, one component each (`streams.catalog.DATAFLOWS` has them all)
DATAFLOW_NAMES = ("inventory_snapshot", "revenue_windows", "flash_sale_price_map", "serving_caches")
