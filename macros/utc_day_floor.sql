{% macro utc_day_floor(timestamp_expression) -%}
    {{ return(adapter.dispatch('utc_day_floor', 'activity_export')(timestamp_expression)) }}
{%- endmacro %}

{# The start of the UTC day a timestamptz falls in. Epoch arithmetic keeps it independent of the
   session time zone (a cast to date is not). #}
{% macro default__utc_day_floor(timestamp_expression) -%}
    to_timestamp(floor(extract(epoch from {{ timestamp_expression }}) / 86400) * 86400)
{%- endmacro %}
