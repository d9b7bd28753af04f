with

source as (
    {{ cdc_current(source('shop', 'cdc_inventory_adjustment')) }}
),

renamed as (
    select
        JSONExtractInt(row, 'id') as adjustment_id,
        JSONExtractString(row, 'product_id') as product_id,
        JSONExtractInt(row, 'delta') as delta,
        JSONExtractString(row, 'reason') as reason,
        JSONExtract(row, 'order_id', 'Nullable(String)') as order_id,
        {{ json_ts('row', 'created_at') }} as adjusted_at,
        source_changed_at as _changed_at,
        source_landed_at as _landed_at
    from source
)

select * from renamed
