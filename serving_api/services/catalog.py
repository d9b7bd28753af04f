"""Products and their prices: SCD2 price history, product.updated events through the outbox."""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from serving_api.services import inventory
from shopstream.domain import Conflict, Invalid, Money, MoneyError, NotFound, PriceVersion, event_type
from shopstream.domain import change_price as scd2_change
from shopstream.runtime.context import Context

PRODUCT_UPDATED = event_type("ecommerce.product.product.updated.v1")

# A product's category: a lowercase slug (a letter, then up to 39 letters, digits, '_' or '-').
# The one definition of the rule: the request models take this pattern, the catalog checks it
# again for other callers, and migration 0004_product_category holds the same CHECK.
CATEGORY_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
DEFAULT_CATEGORY = "general"
_CATEGORY = re.compile(CATEGORY_PATTERN)


def check_category(category: str) -> str:
    """`category` when it follows the rule; Invalid otherwise."""
    if not _CATEGORY.fullmatch(category):
        raise Invalid(
            f"category must match {CATEGORY_PATTERN}",
            invalid_params=[{"name": "category", "reason": "not a lowercase slug"}],
        )
    return category


PRODUCT_SELECT = """
SELECT p.id, p.sku, p.name, p.description, p.category, p.active, p.version, p.created_at, p.updated_at,
       h.amount_minor, h.currency, h.version AS price_version
FROM products p JOIN product_price_history h ON h.product_id = p.id AND h.valid_to IS NULL
"""


@dataclass(frozen=True)
class Product:
    id: str
    sku: str
    name: str
    description: str | None
    category: str
    active: bool
    version: int
    price: Money
    price_version: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sku": self.sku,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "active": self.active,
            "version": self.version,
            "price": {
                "amount": str(self.price.decimal()),
                "currency": self.price.currency,
                "amountMinor": self.price.amount_minor,
            },
            "priceVersion": self.price_version,
        }


def _product(row: asyncpg.Record) -> Product:
    return Product(
        row["id"],
        row["sku"],
        row["name"],
        row["description"],
        row["category"],
        row["active"],
        row["version"],
        Money(row["amount_minor"], row["currency"].strip()),
        row["price_version"],
    )


async def get(conn: asyncpg.Connection, product_id: str, *, lock: bool = False) -> Product:
    row = await conn.fetchrow(PRODUCT_SELECT + " WHERE p.id = $1" + (" FOR UPDATE OF p" if lock else ""), product_id)
    if row is None:
        raise NotFound("Product", product_id)
    return _product(row)


async def get_many(conn: asyncpg.Connection, product_ids: list[str]) -> list[dict[str, Any]]:
    """The products with these ids as JSON, in one query; unknown ids are left out."""
    rows = await conn.fetch(PRODUCT_SELECT + " WHERE p.id = ANY($1::text[])", product_ids)
    return [_product(r).to_json() for r in rows]


async def create(
    conn: asyncpg.Connection,
    ctx: Context,
    user_id: str,
    sku: str,
    name: str,
    description: str | None,
    price: Money,
    stock: int,
    category: str = DEFAULT_CATEGORY,
) -> Product:
    """A new product, its first price version and its stock row."""
    product_id = f"P-{uuid.uuid4().hex[:12]}"
    try:
        await conn.execute(
            "INSERT INTO products (id, sku, name, description, category) VALUES ($1, $2, $3, $4, $5)",
            product_id,
            sku,
            name,
            description,
            check_category(category),
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"a product with SKU {sku!r} exists", code="duplicate-sku", title="SKU already exists") from exc
    await conn.execute(
        "INSERT INTO product_price_history (product_id, version, amount_minor, currency, valid_from, changed_by) "
        "VALUES ($1, 1, $2, $3, now(), $4)",
        product_id,
        price.amount_minor,
        price.currency,
        user_id,
    )
    await conn.execute("INSERT INTO inventory_stock (product_id, on_hand) VALUES ($1, 0)", product_id)
    if stock:
        await inventory.adjust(conn, ctx, product_id, stock, "RESTOCK")
    product = await get(conn, product_id)
    await _updated(conn, ctx, product)
    return product


async def update(conn: asyncpg.Connection, ctx: Context, product_id: str, changes: dict[str, Any]) -> Product:
    current = await get(conn, product_id, lock=True)
    fields = {k: v for k, v in changes.items() if k in ("name", "description", "category", "active")}
    if "category" in fields:
        check_category(fields["category"])
    if not fields:
        return current
    assignments = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(fields))
    await conn.execute(
        f"UPDATE products SET {assignments}, version = version + 1, updated_at = now() WHERE id = $1",  # noqa: S608
        product_id,
        *fields.values(),
    )
    product = await get(conn, product_id)
    await _updated(conn, ctx, product)
    return product


async def change_price(conn: asyncpg.Connection, ctx: Context, user_id: str, product_id: str, price: Money) -> Product:
    """SCD2: close the open price version and open the next one, in one transaction."""
    current = await get(conn, product_id, lock=True)
    row = await conn.fetchrow(
        "SELECT valid_from, now() AS now FROM product_price_history WHERE product_id = $1 AND valid_to IS NULL",
        product_id,
    )
    open_version = PriceVersion(current.price_version, current.price, row["valid_from"])
    try:
        change = scd2_change(open_version, price, max(row["now"], row["valid_from"] + timedelta(microseconds=1)))
    except MoneyError as exc:
        raise Invalid(str(exc)) from exc
    if change is None:
        return current
    closed, opened = change
    await conn.execute(
        "UPDATE product_price_history SET valid_to = $3 WHERE product_id = $1 AND version = $2",
        product_id,
        closed.version,
        closed.valid_to,
    )
    await conn.execute(
        "INSERT INTO product_price_history (product_id, version, amount_minor, currency, valid_from, changed_by) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        product_id,
        opened.version,
        opened.price.amount_minor,
        opened.price.currency,
        opened.valid_from,
        user_id,
    )
    await conn.execute("UPDATE products SET version = version + 1, updated_at = now() WHERE id = $1", product_id)
    product = await get(conn, product_id)
    await _updated(conn, ctx, product)
    return product


async def price_history(conn: asyncpg.Connection, product_id: str) -> list[dict[str, Any]]:
    await get(conn, product_id)
    rows = await conn.fetch(
        "SELECT version, amount_minor, currency, valid_from, valid_to, changed_by FROM product_price_history "
        "WHERE product_id = $1 ORDER BY version",
        product_id,
    )
    return [
        {
            "version": r["version"],
            "amountMinor": r["amount_minor"],
            "currency": r["currency"].strip(),
            "validFrom": r["valid_from"].isoformat(),
            "validTo": r["valid_to"].isoformat() if r["valid_to"] else None,
            "changedBy": r["changed_by"],
        }
        for r in rows
    ]


def encode_cursor(product_id: str) -> str:
    return base64.urlsafe_b64encode(product_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        decoded = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        decoded = ""
    if not decoded.startswith("P-"):
        raise Invalid(
            "the cursor is not one this API gave out", invalid_params=[{"name": "cursor", "reason": "malformed"}]
        )
    return decoded


async def search(
    conn: asyncpg.Connection,
    *,
    q: str | None,
    active: bool | None,
    sku: str | None = None,
    min_minor: int | None,
    max_minor: int | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Product], str | None]:
    """One page of products by id order; the cursor is opaque and stable under inserts."""
    where, args = [], []
    for clause, value in (
        ("(p.name ILIKE $%d OR p.sku ILIKE $%d)", f"%{q}%" if q else None),
        ("p.sku = $%d", sku),
        ("p.active = $%d", active),
        ("h.amount_minor >= $%d", min_minor),
        ("h.amount_minor <= $%d", max_minor),
        ("p.id > $%d", decode_cursor(cursor) if cursor else None),
    ):
        if value is not None:
            args.append(value)
            where.append(clause.replace("%d", str(len(args))))
    sql = PRODUCT_SELECT + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY p.id LIMIT {limit + 1}"
    rows = await conn.fetch(sql, *args)
    products = [_product(r) for r in rows[:limit]]
    return products, encode_cursor(products[-1].id) if len(rows) > limit else None


async def _updated(conn: asyncpg.Connection, ctx: Context, product: Product) -> None:
    await ctx.publish(
        conn,
        PRODUCT_UPDATED,
        {
            "productId": product.id,
            "sku": product.sku,
            "name": product.name,
            "description": product.description,
            "price": product.price.to_avro(),
            "priceVersion": product.price_version,
            "active": product.active,
            "version": product.version,
            "category": product.category,
        },
        producer="product-service",
    )
