"""The contract snapshots (OpenAPI, gRPC descriptor, generated gRPC code) match the code."""

from __future__ import annotations

import json
import subprocess
import sys

from serving_api.contracts import DESCRIPTOR, OPENAPI, descriptor_text, openapi_text


def test_openapi_snapshot_is_current_and_documents_the_seed_paths() -> None:
    assert OPENAPI.read_text() == openapi_text(), "run `python -m serving_api.contracts`"
    paths = json.loads(OPENAPI.read_text())["paths"]
    for path in (
        "/api/v1/products",
        "/api/v1/products/{product_id}",
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/pay",
        "/api/v1/orders/{order_id}/cancel",
    ):
        assert path in paths, path
    params = {p["name"] for p in paths["/api/v1/orders"]["post"]["parameters"]}
    assert "Idempotency-Key" in params


def test_grpc_descriptor_snapshot_is_current() -> None:
    assert DESCRIPTOR.read_text() == descriptor_text(), "run `python -m serving_api.contracts`"
    descriptor = json.loads(DESCRIPTOR.read_text())
    assert descriptor["package"] == "shopstream.inventory.v1"
    assert [m["name"] for m in descriptor["service"][0]["method"]] == ["ReserveStock", "ReleaseStock", "QueryStock"]


def test_generated_grpc_code_is_current() -> None:
    result = subprocess.run([sys.executable, "-m", "serving_api.codegen", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_graphql_sdl_snapshot_is_current_and_names_no_table() -> None:
    from serving_api.contracts import GRAPHQL
    from serving_api.graphql import sdl

    text = GRAPHQL.read_text()
    assert text == sdl(), "run `python -m serving_api.contracts`"
    for query in ("product(id: ID!): Product", "products(", "productInventory(id: ID!): Inventory!"):
        assert query in text
    for table in ("inventory_stock", "product_price_history", "flash_sales", "_minor", "order_items"):
        assert table not in text, f"the schema leaks {table}"
