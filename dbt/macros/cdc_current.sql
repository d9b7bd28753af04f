{#- The current state of a CDC-landed table: per row key, the row after its latest change (by the
    source LSN), rows whose latest change is a delete left out. Duplicates of a change (a batch
    landed twice) carry the same LSN, so they never change the answer. -#}
{% macro cdc_current(relation) %}
    select
        pk,
        argMax(row, lsn) as row,
        max(changed_at) as changed_at,
        max(_landed_at) as landed_at
    from {{ relation }}
    group by pk
    having argMax(deleted, lsn) = 0
{% endmacro %}
