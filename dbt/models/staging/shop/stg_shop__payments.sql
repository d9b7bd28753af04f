with

source as (
    {{ cdc_current(source('shop', 'cdc_payments')) }}
),

renamed as (
    select
        JSONExtractString(row, 'id') as payment_id,
        JSONExtractString(row, 'order_id') as order_id,
        JSONExtractInt(row, 'amount_minor') as amount_minor,
        JSONExtractString(row, 'currency') as currency,
        JSONExtractString(row, 'status') as status,
        JSONExtractString(row, 'gateway') as gateway,
        JSONExtract(row, 'gateway_ref', 'Nullable(String)') as gateway_ref,
        {{ json_ts('row', 'created_at') }} as created_at,
        source_changed_at as _changed_at,
        source_landed_at as _landed_at
    from source
)

select * from renamed
