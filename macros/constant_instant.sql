{% macro constant_instant(scalar_query) -%}
    {#- The value of a one-value query returning a timestamptz (or null), written in as a
        constant: `to_timestamp(<epoch seconds>)`, rounded down to the second so it is never
        later than the exact value, or none when the query returns null. A constant lets the
        planner see how narrow a window is and read it through an index, which it does not do
        for a scalar subquery on a large table. Only at run time; none otherwise. -#}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set seconds = run_query('select floor(extract(epoch from (' ~ scalar_query ~ ')))').columns[0].values()[0] -%}
    {%- if seconds is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return('to_timestamp(' ~ ('%d' | format(seconds | int)) ~ ')') }}
{%- endmacro %}
