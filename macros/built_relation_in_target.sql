{% macro built_relation_in_target(identifier) -%}
    {#- The relation `identifier` in the target schema, or none: built_relation() for an
        operation, which has no model of its own. -#}
    {{ return(adapter.get_relation(database=target.database, schema=target.schema, identifier=identifier)) }}
{%- endmacro %}
