with

source as (
    -- one row per event id: a record landed twice is the same event
    select * from {{ source('events', 'events') }}
    order by event_id, _landed_at
    limit 1 by event_id
),

renamed as (
    select
        event_id,
        event_type,
        schema_version,
        schema_id,
        partition_key,
        occurred_at,
        producer,
        correlation_id,
        trace_id,
        payload,
        _landed_at
    from source
)

select * from renamed
