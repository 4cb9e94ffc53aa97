{% macro get_where_subquery(relation) -%}
    {#- dbt's own macro, extended: a data test configured with `where: "recent_window(<column>)"`
        checks only the rows whose <column> lies within var('data_test_days') days of the newest
        value of that column, so the nightly `dbt build` reads the recent window of the big
        relations and stays flat in history. `--vars '{data_test_days: 0}'` checks all history
        (the weekly job, docs/models.md). Any other `where` works as in dbt. -#}
    {%- set where = config.get('where', '') -%}
    {%- set recent = modules.re.match('^\s*recent_window\((\w+)\)\s*$', where or '') -%}
    {%- if recent -%}
        {%- set column = recent.group(1) -%}
        {%- if (var('data_test_days') | int) <= 0 -%}
            {{ return(relation) }}
        {%- endif -%}
        {%- set filtered -%}
            (
                select * from {{ relation }}
                where {{ column }} >= (
                    select {{ dbt.dateadd('day', -1 * (var('data_test_days') | int), 'max(' ~ column ~ ')') }}
                    from {{ relation }}
                )
            ) as dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- endif -%}
    {{ return(adapter.dispatch('get_where_subquery', 'dbt')(relation)) }}
{%- endmacro %}
