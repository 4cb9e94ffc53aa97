{% macro export_index(columns, unique=false, where=none) -%}
    {{ return(adapter.dispatch('export_index', 'activity_export')(columns, unique, where)) }}
{%- endmacro %}

{# DuckDB needs no index: its per-row-group min/max (zone maps) already skip the row groups
   outside a brand's period, and an ART index would only slow the delete+insert runs. #}
{% macro default__export_index(columns, unique, where) -%}
{%- endmacro %}

{# An index on `this` unless one on the same columns exists; run as a post-hook, so it also
   reaches relations built before the index was added (incremental models are never rebuilt).
   The check is on the table's own indexes rather than on a name, because a table
   materialization renames the previous relation (and its indexes) out of the way first.
   Columns the loader compares to text literals are indexed `collate "C"`: that is how DuckDB's
   postgres extension sends them (`brand = 'X' COLLATE "C"`), and PostgreSQL only uses an
   index whose collation matches the comparison's. With `where`, a partial index: the
   predicate is written as PostgreSQL prints it back (`pg_indexes.indexdef`), e.g.
   `(available_at > registered_at)`, so that the check finds it. #}
{% macro postgres__export_index(columns, unique, where) -%}
    {%- set column_list = columns | join(', ') -%}
    {%- set definition = '(' ~ column_list ~ ')' ~ (' where ' ~ where if where else '') -%}
    do $$
    begin
        if not exists (
            select 1
            from pg_catalog.pg_indexes
            where
                schemaname = '{{ this.schema }}'
                and tablename = '{{ this.identifier }}'
                and lower(indexdef) like '{{ "create unique index" if unique else "create %index" }} %'
                and lower(indexdef) like lower('% using btree {{ definition | replace("'", "''") }}')
        ) then
            create {{ 'unique ' if unique }}index on {{ this }} {{ definition }};
        end if;
    end
    $$
{%- endmacro %}
