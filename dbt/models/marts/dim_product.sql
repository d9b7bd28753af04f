-- Products as a type-2 slowly changing dimension: one row per price version (the OLTP keeps every
-- version with its validity, product_price_history), carrying the product's current attributes.
-- Facts join the version that was valid when they happened (ASOF JOIN on valid_from).

with

products as (
    select * from {{ ref('stg_shop__products') }}
),

prices as (
    select * from {{ ref('stg_shop__product_price_history') }}
)

select
    concat(prices.product_id, '@', toString(prices.price_version)) as product_key,
    prices.product_id as product_id,
    products.sku as sku,
    products.name as name,
    products.category as category,
    products.is_active as is_active,
    prices.price_version as price_version,
    prices.price_minor as price_minor,
    prices.currency as currency,
    prices.valid_from as valid_from,
    prices.valid_to as valid_to,
    toUInt8(prices.valid_to is null) as is_current
from prices
inner join products on prices.product_id = products.product_id
