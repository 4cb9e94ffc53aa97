{% macro optional_source(source_relation, empty_select) -%}
    {#- `select * from` the source table when it exists, else `empty_select` (a typed select
        without rows), so models build on a platform that does not have the table. -#}
    {%- set found = none -%}
    {%- if execute -%}
        {%- set found = adapter.get_relation(
            database=source_relation.database,
            schema=source_relation.schema,
            identifier=source_relation.identifier,
        ) -%}
    {%- endif -%}
    {%- if found is not none -%}
        select * from {{ source_relation }}
    {%- else -%}
        {{ empty_select }}
    {%- endif -%}
{%- endmacro %}
