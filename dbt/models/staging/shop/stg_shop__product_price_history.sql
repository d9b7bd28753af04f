with

source as (
    {{ cdc_current(source('shop', 'cdc_product_price_history')) }}
),

renamed as (
    select
        JSONExtractString(row, 'product_id') as product_id,
        toUInt32(JSONExtractUInt(row, 'version')) as price_version,
        JSONExtractInt(row, 'amount_minor') as price_minor,
        JSONExtractString(row, 'currency') as currency,
        {{ json_ts('row', 'valid_from') }} as valid_from,
        {{ json_ts_or_null('row', 'valid_to') }} as valid_to,
        JSONExtractString(row, 'changed_by') as changed_by,
        source_changed_at as _changed_at,
        source_landed_at as _landed_at
    from source
)

select * from renamed
