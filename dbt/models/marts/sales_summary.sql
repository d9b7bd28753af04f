-- The batch sales summary (domain spec §3): per day, product and currency, what paid orders sold.
-- Days are the day of payment, products the version valid when the order was placed.

with

paid_orders as (
    select order_id, toDate(paid_at) as sales_date
    from {{ ref('fact_orders') }}
    where revenue_minor > 0
),

lines as (
    select * from {{ ref('fact_order_items') }}
)

select
    paid_orders.sales_date as sales_date,
    lines.product_id as product_id,
    any(lines.category) as category,
    lines.currency as currency,
    uniqExact(lines.order_id) as orders,
    sum(lines.qty) as units,
    sum(lines.line_total_minor) as revenue_minor
from lines
inner join paid_orders on lines.order_id = paid_orders.order_id
group by sales_date, product_id, currency
