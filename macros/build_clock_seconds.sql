{% macro build_clock_seconds() -%}
    {#- The build's own clock in epoch seconds: var('export_now') (ISO 8601; without an offset it
        is UTC) or, by default, when the dbt invocation started. One value for every model of a
        build, so they all quarantine the same rows; tests and replays fix it with --vars. -#}
    {%- set configured = var('export_now', none) -%}
    {%- if configured is none -%}
        {{ return(run_started_at.timestamp() | int) }}
    {%- endif -%}
    {%- if configured is string -%}
        {%- set configured = modules.datetime.datetime.fromisoformat(configured.strip().replace('Z', '+00:00')) -%}
    {%- endif -%}
    {%- if configured.tzinfo is none -%}
        {%- set configured = configured.replace(tzinfo=modules.pytz.utc) -%}
    {%- endif -%}
    {{ return(configured.timestamp() | int) }}
{%- endmacro %}
