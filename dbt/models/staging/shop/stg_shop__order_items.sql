with

source as (
    {{ cdc_current(source('shop', 'cdc_order_items')) }}
),

renamed as (
    select
        JSONExtractString(row, 'order_id') as order_id,
        toUInt32(JSONExtractUInt(row, 'line')) as line,
        JSONExtractString(row, 'product_id') as product_id,
        JSONExtractInt(row, 'qty') as qty,
        JSONExtractInt(row, 'unit_price_minor') as unit_price_minor,
        source_changed_at as _changed_at,
        source_landed_at as _landed_at
    from source
)

select * from renamed
