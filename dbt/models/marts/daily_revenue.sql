-- Revenue per day and currency from order.paid / order.canceled (domain spec §5): the batch
-- counterpart of the streaming 1-day revenue windows, which it must match to the cent
-- (`shopstream olap reconcile`).

select
    toDate(booked_at) as revenue_date,
    currency,
    sumIf(amount_minor, kind = 'paid') as paid_minor,
    -sumIf(amount_minor, kind = 'canceled') as canceled_minor,
    sum(amount_minor) as net_minor,
    countIf(kind = 'paid') as paid_orders,
    countIf(kind = 'canceled') as canceled_orders,
    sum(orders) as net_orders
from {{ ref('int_order_revenue_deltas') }}
group by revenue_date, currency
