{% macro build_clock() -%}
    {#- The build's own clock as a timestamptz constant. -#}
    {{ return('to_timestamp(' ~ build_clock_seconds() ~ ')') }}
{%- endmacro %}
