with

source as (
    {{ cdc_current(source('shop', 'cdc_products')) }}
),

renamed as (
    select
        JSONExtractString(row, 'id') as product_id,
        JSONExtractString(row, 'sku') as sku,
        JSONExtractString(row, 'name') as name,
        JSONExtract(row, 'description', 'Nullable(String)') as description,
        if(JSONHas(row, 'category'), JSONExtractString(row, 'category'), 'general') as category,
        JSONExtractBool(row, 'active') as is_active,
        toUInt32(JSONExtractUInt(row, 'version')) as version,
        {{ json_ts('row', 'created_at') }} as created_at,
        {{ json_ts('row', 'updated_at') }} as updated_at,
        source_changed_at as _changed_at,
        source_landed_at as _landed_at
    from source
)

select * from renamed
