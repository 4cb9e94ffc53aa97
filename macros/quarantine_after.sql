{% macro quarantine_after() -%}
    {#- The latest registration or load time a build trusts, as a timestamptz constant: its own
        clock plus var('clock_skew_minutes'). A row registered or loaded later is quarantined
        (export_quarantined_events): it moves no watermark and holds no brand. -#}
    {{ return('to_timestamp(' ~ (build_clock_seconds() + 60 * (var('clock_skew_minutes') | int)) ~ ')') }}
{%- endmacro %}
