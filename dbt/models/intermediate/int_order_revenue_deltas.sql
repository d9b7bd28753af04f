-- What each paid order does to revenue, at the time it does it: +amount when paid, and -amount
-- when a paid order is canceled. The same rules as the streaming revenue windows
-- (shopstream.domain.revenue): the first payment counts once, a cancellation subtracts once and only
-- what was paid, whichever of the two was written first.

with

order_events as (
    select
        event_type,
        JSONExtractString(payload, 'orderId') as order_id,
        occurred_at,
        payload
    from {{ ref('stg_events__events') }}
    where event_type in ('ecommerce.order.order.paid.v1', 'ecommerce.order.order.canceled.v1')
),

payments as (
    select
        order_id,
        min(occurred_at) as paid_at,
        argMin(JSONExtractInt(payload, 'amount', 'amountMinor'), occurred_at) as amount_minor,
        argMin(JSONExtractString(payload, 'amount', 'currency'), occurred_at) as currency
    from order_events
    where event_type = 'ecommerce.order.order.paid.v1'
    group by order_id
),

cancellations as (
    select
        order_id,
        min(occurred_at) as canceled_at
    from order_events
    where event_type = 'ecommerce.order.order.canceled.v1'
    group by order_id
),

paid as (
    select
        order_id,
        currency,
        paid_at as booked_at,
        amount_minor,
        1 as orders,
        'paid' as kind
    from payments
),

canceled_after_payment as (
    select
        cancellations.order_id as order_id,
        payments.currency as currency,
        cancellations.canceled_at as booked_at,
        -payments.amount_minor as amount_minor,
        -1 as orders,
        'canceled' as kind
    from cancellations
    inner join payments on cancellations.order_id = payments.order_id
)

select * from paid
union all
select * from canceled_after_payment
