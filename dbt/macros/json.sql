{#- Debezium's JSON of a Postgres row: timestamptz as ISO-8601 text, bigint as a number. -#}
{% macro json_ts(column, field) -%}
    parseDateTime64BestEffort(JSONExtractString({{ column }}, '{{ field }}'), 6, 'UTC')
{%- endmacro %}

{% macro json_ts_or_null(column, field) -%}
    parseDateTime64BestEffortOrNull(JSONExtract({{ column }}, '{{ field }}', 'Nullable(String)'), 6, 'UTC')
{%- endmacro %}
