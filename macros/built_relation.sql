{% macro built_relation(identifier) -%}
    {#- The relation `identifier` in this model's schema as the previous build left it, or none
        (first build, parse time, unit tests). For the state a build carries forward without a
        cycle in the DAG: export_watermark and export_held_events are built after the models that
        read their previous content, and a model may not ref() what comes after it. -#}
    {%- if not execute or model.resource_type != 'model' -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(database=this.database, schema=this.schema, identifier=identifier)) }}
{%- endmacro %}
