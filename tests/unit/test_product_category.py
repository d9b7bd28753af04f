"""A product's category: one rule (serving_api.services.catalog), taken by the request models and
the migration; the simulator seeds categories deterministically."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from dev.simulators.storefront import CATEGORIES, Storefront
from serving_api.http.models import ProductIn, ProductPatch
from serving_api.http.problems import problem_for
from serving_api.services import catalog
from shopstream.domain import Invalid

GOOD = ("general", "apparel", "home-decor", "toys_2", "x", "a" * 40)
BAD = ("", "Apparel", "9lives", "-x", "_x", "home decor", "a" * 41, "caf\u00e9", "toys!")
PRICE = {"amount": "1.00", "currency": "USD"}


def test_a_new_product_is_general_unless_given_a_category() -> None:
    assert ProductIn(sku="s", name="n", price=PRICE).category == catalog.DEFAULT_CATEGORY == "general"  # type: ignore[arg-type]
    assert ProductIn(sku="s", name="n", price=PRICE, category="apparel").category == "apparel"  # type: ignore[arg-type]
    # like every string of a request body, surrounding whitespace is stripped before the rule
    assert ProductIn(sku="s", name="n", price=PRICE, category=" toys\n").category == "toys"  # type: ignore[arg-type]
    with pytest.raises(Invalid):
        catalog.check_category("toys\n")  # the catalog itself strips nothing


@pytest.mark.parametrize("category", GOOD)
def test_lowercase_slugs_are_categories(category: str) -> None:
    assert catalog.check_category(category) == category
    assert ProductIn(sku="s", name="n", price=PRICE, category=category).category == category  # type: ignore[arg-type]
    assert ProductPatch(category=category).model_dump(exclude_unset=True) == {"category": category}


@pytest.mark.parametrize("category", BAD)
def test_anything_else_is_refused_by_the_models_and_the_catalog(category: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ProductIn(sku="s", name="n", price=PRICE, category=category)  # type: ignore[arg-type]
    assert [e["loc"] for e in caught.value.errors()] == [("category",)]
    with pytest.raises(ValidationError):
        ProductPatch(category=category)
    with pytest.raises(Invalid) as refused:
        catalog.check_category(category)
    problem = problem_for(refused.value)
    assert problem.status == 422 and problem.extra["invalid_params"][0]["name"] == "category"


def test_a_patch_cannot_null_the_category_and_leaves_it_alone_when_absent() -> None:
    with pytest.raises(ValidationError, match="category cannot be null"):
        ProductPatch.model_validate({"category": None})
    assert "category" not in ProductPatch(name="n").model_dump(exclude_unset=True)


def test_the_migration_checks_the_catalog_rule() -> None:
    sql = (Path(catalog.__file__).parents[1] / "migrations" / "0004_product_category.sql").read_text()
    assert f"category ~ '{catalog.CATEGORY_PATTERN}'" in sql
    assert f"DEFAULT '{catalog.DEFAULT_CATEGORY}'" in sql
    assert "-- depends: 0003_flash_sales" in sql


def _seeded_categories(seed: int) -> list[str]:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["category"])
        return httpx.Response(201, json={"id": f"P-{len(sent)}"})

    async def seed_products() -> None:
        shop = Storefront("http://api.test", users=1, seed=seed)
        await shop.http.aclose()
        shop.http = httpx.AsyncClient(base_url="http://api.test", transport=httpx.MockTransport(handler))
        try:
            await shop.seed_products(30)
        finally:
            await shop.close()

    asyncio.run(seed_products())
    return sent


def test_the_simulator_seeds_categories_from_its_list_deterministically() -> None:
    first = _seeded_categories(7)
    assert first == _seeded_categories(7)
    assert set(first) <= set(CATEGORIES) and len(set(first)) > 1
    assert all(re.fullmatch(catalog.CATEGORY_PATTERN, c) for c in CATEGORIES)
