with

source as (
    {{ cdc_current(source('shop', 'cdc_order_status_history')) }}
),

renamed as (
    select
        JSONExtractInt(row, 'id') as status_change_id,
        JSONExtractString(row, 'order_id') as order_id,
        JSONExtract(row, 'from_status', 'Nullable(String)') as from_status,
        JSONExtractString(row, 'to_status') as to_status,
        JSONExtractString(row, 'changed_by') as changed_by,
        JSONExtract(row, 'reason', 'Nullable(String)') as reason,
        {{ json_ts('row', 'changed_at') }} as changed_at,
        source_changed_at as _changed_at,
        source_landed_at as _landed_at
    from source
)

select * from renamed
