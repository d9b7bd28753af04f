-- One row per order line, with the product version whose price was valid when the order was
-- placed (ASOF JOIN: the latest valid_from at or before the order's creation).

with

items as (
    select * from {{ ref('stg_shop__order_items') }}
),

orders as (
    select order_id, currency, created_at, status from {{ ref('stg_shop__orders') }}
),

products as (
    select product_id, product_key, category, valid_from from {{ ref('dim_product') }}
),

lines as (
    select
        items.order_id as order_id,
        items.line as line,
        items.product_id as product_id,
        items.qty as qty,
        items.unit_price_minor as unit_price_minor,
        items.qty * items.unit_price_minor as line_total_minor,
        orders.currency as currency,
        orders.status as order_status,
        orders.created_at as ordered_at,
        toDate(orders.created_at) as order_date
    from items
    inner join orders on items.order_id = orders.order_id
)

select
    lines.order_id as order_id,
    lines.line as line,
    lines.product_id as product_id,
    products.product_key as product_key,
    products.category as category,
    lines.qty as qty,
    lines.unit_price_minor as unit_price_minor,
    lines.line_total_minor as line_total_minor,
    lines.currency as currency,
    lines.order_status as order_status,
    lines.ordered_at as ordered_at,
    lines.order_date as order_date
from lines
asof left join products
    on lines.product_id = products.product_id and lines.ordered_at >= products.valid_from
settings join_use_nulls = 1
