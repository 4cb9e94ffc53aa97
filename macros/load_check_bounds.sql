{% macro load_check_bounds(until_expression) -%}
    {#- [from, until) of the completeness check as two SQL constants (from is none for all
        history): until is `until_expression` (a scalar query), from var('load_check_days')
        days before it. -#}
    {%- set until = constant_instant(until_expression) -%}
    {%- if until is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set days = var('load_check_days') | int -%}
    {%- set since = none if days <= 0 else constant_instant('select ' ~ dbt.dateadd('day', -1 * days, until)) -%}
    {{ return({'since': since, 'until': until}) }}
{%- endmacro %}
