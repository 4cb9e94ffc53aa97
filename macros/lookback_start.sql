{% macro lookback_start(column_name) -%}
    {#- The earliest value an incremental run re-reads: the newest one already built, less
        var('lookback_hours'), so rows that committed late are still picked up. An empty
        relation re-reads everything.

        When the model runs, the value is looked up first and written in as a constant (rounded
        up to the second, so never earlier than the exact value): the planner then sees how
        narrow the window is and reads it through the index on the column, which it does not do
        for a scalar subquery on a large table. At parse time and in unit tests (where `this`
        is a fixture) it stays the scalar subquery. -#}
    {%- set exact -%}
        (
            select
                coalesce(
                    {{ dbt.dateadd('hour', -1 * var('lookback_hours'), 'max(' ~ column_name ~ ')') }},
                    cast('1900-01-01 00:00:00+00' as timestamp with time zone)
                )
            from {{ this }}
        )
    {%- endset -%}
    {%- if execute and model.resource_type == 'model' and is_incremental() -%}
        {%- set seconds = run_query('select ceil(extract(epoch from ' ~ exact ~ '))').columns[0].values()[0] -%}
        to_timestamp({{ '%d' | format(seconds | int) }})
    {%- else -%}
        {{ exact }}
    {%- endif -%}
{%- endmacro %}
