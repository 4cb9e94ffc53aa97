{% macro first_delivery_per_event(relation) -%}
    {{ return(adapter.dispatch('first_delivery_per_event', 'activity_export')(relation)) }}
{%- endmacro %}

{# The earliest registration of each event_id in `relation` (a CTE or relation holding event
   deliveries); ties on registered_at go to the earliest occurred_at, then the earliest load.
   The portable form is a row_number() window; it adds a column, which the outer select drops by
   naming the delivery columns. #}
{% macro default__first_delivery_per_event(relation) -%}
    select
        {{ event_delivery_columns() | join(',\n        ') }}
    from (
        select
            *,
            row_number() over (
                partition by event_id
                order by registered_at asc, occurred_at asc, loaded_at asc
            ) as delivery_rank
        from {{ relation }}
    ) as ranked
    where delivery_rank = 1
{%- endmacro %}

{# PostgreSQL and DuckDB keep one row per key with DISTINCT ON, which sorts once and needs no
   extra column. #}
{% macro postgres__first_delivery_per_event(relation) -%}
    select distinct on (event_id) *
    from {{ relation }}
    order by event_id asc, registered_at asc, occurred_at asc, loaded_at asc
{%- endmacro %}

{% macro duckdb__first_delivery_per_event(relation) -%}
    {{ return(activity_export.postgres__first_delivery_per_event(relation)) }}
{%- endmacro %}
