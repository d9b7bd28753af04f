with

source as (
    {{ cdc_current(source('shop', 'cdc_inventory_stock')) }}
),

renamed as (
    select
        JSONExtractString(row, 'product_id') as product_id,
        JSONExtractInt(row, 'on_hand') as on_hand,
        JSONExtractInt(row, 'reserved') as reserved,
        JSONExtractInt(row, 'version') as version,
        {{ json_ts('row', 'updated_at') }} as updated_at,
        source_changed_at as _changed_at,
        source_landed_at as _landed_at
    from source
)

select * from renamed
