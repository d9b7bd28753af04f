{#- The current state of a CDC-landed table: per row key, the row after its latest change, rows
    whose latest change is a delete left out. "Latest" is the Kafka order of the key's records
    (Debezium writes a key to one partition, the snapshot before the stream; an LSN alone can put a
    snapshot read after a change committed just after the slot was made), the LSN breaking ties.
    Copies of a record (a batch landed twice) are the same change, so they never change the answer. -#}
{% macro cdc_current(relation) %}
    select
        pk,
        argMax(row, (_offset, lsn)) as row,
        max(changed_at) as source_changed_at,
        max(_landed_at) as source_landed_at
    from {{ relation }}
    group by pk
    having argMax(deleted, (_offset, lsn)) = 0
{% endmacro %}
