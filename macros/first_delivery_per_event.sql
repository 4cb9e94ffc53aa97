{% macro first_delivery_per_event(relation) -%}
    {#- The earliest registration of each event_id in `relation` (a CTE or relation holding
        event deliveries); ties on registered_at go to the earliest occurred_at. DISTINCT ON
        reads the same on PostgreSQL and DuckDB. -#}
    select distinct on (event_id) *
    from {{ relation }}
    order by event_id asc, registered_at asc, occurred_at asc
{%- endmacro %}
