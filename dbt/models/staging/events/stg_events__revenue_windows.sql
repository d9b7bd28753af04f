with

source as (
    -- the latest value of each window: the highest version the dataflow wrote
    select * from {{ source('events', 'revenue_windows') }}
    order by currency, window_size, window_start, version desc
    limit 1 by currency, window_size, window_start
),

renamed as (
    select
        window_id,
        currency,
        window_size,
        window_start,
        window_end,
        toDate(window_start) as window_date,
        amount_minor as revenue_minor,
        orders,
        version,
        toBool(final) as is_final,
        _landed_at
    from source
)

select * from renamed
