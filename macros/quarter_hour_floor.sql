{% macro quarter_hour_floor(timestamp_expression) -%}
    {{ return(adapter.dispatch('quarter_hour_floor', 'activity_export')(timestamp_expression)) }}
{%- endmacro %}

{# The UTC quarter hour a timestamptz falls in. Every real UTC offset is a whole number of
   quarter hours, so any local hour, day or week boundary is also a UTC quarter-hour boundary:
   counting touches per quarter hour answers "touched in [start, end)" exactly for every
   tenant's period. Epoch arithmetic keeps it independent of the session time zone. #}
{% macro default__quarter_hour_floor(timestamp_expression) -%}
    to_timestamp(floor(extract(epoch from {{ timestamp_expression }}) / 900) * 900)
{%- endmacro %}
