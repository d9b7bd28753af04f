-- One row per order: its current status, totals, and when it was placed, paid, canceled and
-- fulfilled (from the status history). revenue_minor is what the order brings in: its total once
-- paid, nothing when unpaid or canceled.

with

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

transitions as (
    select
        order_id,
        minIfOrNull(changed_at, to_status = 'PAID') as paid_at,
        minIfOrNull(changed_at, to_status = 'CANCELED') as canceled_at,
        minIfOrNull(changed_at, to_status = 'FULFILLED') as fulfilled_at
    from {{ ref('stg_shop__order_status_history') }}
    group by order_id
),

items as (
    select
        order_id,
        count() as lines,
        sum(qty) as units
    from {{ ref('stg_shop__order_items') }}
    group by order_id
)

select
    orders.order_id as order_id,
    orders.customer_id as customer_id,
    orders.status as status,
    orders.currency as currency,
    orders.total_minor as total_minor,
    items.lines as lines,
    items.units as units,
    orders.created_at as created_at,
    transitions.paid_at as paid_at,
    transitions.canceled_at as canceled_at,
    transitions.fulfilled_at as fulfilled_at,
    toDate(orders.created_at) as order_date,
    if(orders.status in ('PAID', 'FULFILLED'), orders.total_minor, 0) as revenue_minor
from orders
left join transitions on orders.order_id = transitions.order_id
left join items on orders.order_id = items.order_id
settings join_use_nulls = 1
