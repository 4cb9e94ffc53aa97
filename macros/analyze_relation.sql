{% macro analyze_relation() -%}
    {{ return(adapter.dispatch('analyze_relation', 'activity_export')()) }}
{%- endmacro %}

{# Nothing to do where the warehouse keeps its statistics itself (DuckDB). #}
{% macro default__analyze_relation() -%}
{%- endmacro %}

{# A table created in the middle of a build has no statistics until autovacuum gets to it; the
   models that read it next would be planned on a guess (and a bad guess makes PostgreSQL compile
   the query with JIT, which costs seconds). #}
{% macro postgres__analyze_relation() -%}
    analyze {{ this }}
{%- endmacro %}
