with

source as (
    {{ cdc_current(source('shop', 'cdc_orders')) }}
),

renamed as (
    select
        JSONExtractString(row, 'id') as order_id,
        JSONExtractString(row, 'user_id') as customer_id,
        JSONExtractString(row, 'status') as status,
        JSONExtractInt(row, 'total_minor') as total_minor,
        JSONExtractString(row, 'currency') as currency,
        JSONExtractString(row, 'correlation_id') as correlation_id,
        toUInt32(JSONExtractUInt(row, 'version')) as version,
        {{ json_ts('row', 'created_at') }} as created_at,
        {{ json_ts('row', 'updated_at') }} as updated_at,
        source_changed_at as _changed_at,
        source_landed_at as _landed_at
    from source
)

select * from renamed
