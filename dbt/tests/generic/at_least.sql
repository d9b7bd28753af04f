{#- Rows whose column is below a minimum (dbt_utils' accepted_range without the package: dbt deps
    needs the dbt Hub, which this machine cannot reach). -#}
{% test at_least(model, column_name, minimum) %}
select * from {{ model }} where {{ column_name }} < {{ minimum }}
{% endtest %}
