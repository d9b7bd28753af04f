-- One row per stock adjustment, with the product's available stock after it (the running sum of
-- its adjustments: reservations take, releases and restocks give back), which must never be negative.

with

adjustments as (
    select * from {{ ref('stg_shop__inventory_adjustment') }}
),

products as (
    select product_id, product_key, valid_from from {{ ref('dim_product') }}
),

running as (
    select
        adjustment_id,
        product_id,
        delta,
        reason,
        order_id,
        adjusted_at,
        toDate(adjusted_at) as adjustment_date,
        sum(delta) over (
            partition by product_id order by adjustment_id rows between unbounded preceding and current row
        ) as available_after
    from adjustments
)

select
    running.adjustment_id as adjustment_id,
    running.product_id as product_id,
    products.product_key as product_key,
    running.delta as delta,
    running.reason as reason,
    running.order_id as order_id,
    running.adjusted_at as adjusted_at,
    running.adjustment_date as adjustment_date,
    running.available_after as available_after
from running
asof left join products
    on running.product_id = products.product_id and running.adjusted_at >= products.valid_from
settings join_use_nulls = 1
