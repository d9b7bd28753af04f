{#- One database for every model (the target's schema): analysts find staging and marts side by
    side, as in jaffle-shop. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ target.schema }}
{%- endmacro %}
