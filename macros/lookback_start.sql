{% macro lookback_start(column_name) -%}
    {#- The earliest value an incremental run re-reads: the newest one already built, less
        var('lookback_hours') so rows that committed late are still picked up. -#}
    (
        select {{ dbt.dateadd('hour', -1 * var('lookback_hours'), 'max(' ~ column_name ~ ')') }}
        from {{ this }}
    )
{%- endmacro %}
