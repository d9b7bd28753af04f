"""Request bodies: strict (unknown fields are errors), amounts as decimal strings, never floats."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from serving_api.services.catalog import CATEGORY_PATTERN, DEFAULT_CATEGORY
from shopstream.domain import Money, MoneyError

CATEGORY_DESCRIPTION = "A lowercase slug: a letter, then up to 39 letters, digits, '_' or '-'"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PriceIn(Strict):
    amount: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$", examples=["129.50"])
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["USD"])

    def money(self) -> Money:
        return Money.parse(self.amount, self.currency)


class ProductIn(Strict):
    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    category: str = Field(
        default=DEFAULT_CATEGORY, pattern=CATEGORY_PATTERN, description=CATEGORY_DESCRIPTION, examples=["apparel"]
    )
    price: PriceIn
    stock: int = Field(default=0, ge=0, le=1_000_000)


class ProductPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    category: str | None = Field(
        default=None, pattern=CATEGORY_PATTERN, description=CATEGORY_DESCRIPTION, examples=["apparel"]
    )
    active: bool | None = None

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> ProductPatch:
        for name in ("name", "category", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class StockAdjustmentIn(Strict):
    delta: int = Field(ge=-1_000_000, le=1_000_000)
    reason: str = Field(default="RESTOCK", pattern=r"^(RESTOCK|SENSOR|MANUAL|OTHER)$")


class OrderLineIn(Strict):
    productId: str = Field(min_length=1, max_length=64)  # noqa: N815 - the API's JSON names
    qty: int = Field(ge=1, le=1000)


class OrderIn(Strict):
    items: list[OrderLineIn] = Field(min_length=1, max_length=100)


class CartItemIn(Strict):
    qty: int = Field(ge=0, le=1000)


class CancelIn(Strict):
    reason: str = Field(default="customer request", min_length=1, max_length=500)


class FulfillIn(Strict):
    trackingNumber: str | None = Field(default=None, max_length=100)  # noqa: N815


def money_or_422(price: PriceIn) -> Money:
    from serving_api.http.problems import invalid

    try:
        return price.money()
    except MoneyError as exc:
        raise invalid(str(exc), [{"name": "price.amount", "reason": str(exc)}]) from exc


class FlashSaleIn(Strict):
    productId: str = Field(min_length=1, max_length=64)  # noqa: N815 (the API's JSON names)
    salePrice: PriceIn  # noqa: N815
    startsAt: AwareDatetime | None = Field(default=None, description="Default: now")  # noqa: N815
    endsAt: AwareDatetime  # noqa: N815
