{% macro previous_watermarks(enabled=true) -%}
    {#- A select of (brand, complete_until) from export_watermark as the previous build left it:
        empty on the first build, at parse time, in unit tests and when not `enabled`. -#}
    {%- set relation = built_relation('export_watermark') if enabled else none -%}
    {%- if relation is not none -%}
        select
            brand,
            complete_until
        from {{ relation }}
    {%- else -%}
        select
            cast(null as varchar(64)) as brand,
            cast(null as timestamp with time zone) as complete_until
        where 1 = 0
    {%- endif -%}
{%- endmacro %}
