{% macro repair_future_watermarks() -%}
    {#- `dbt run-operation repair_future_watermarks`: brings back a deployment whose watermark a
        build before the quarantine pushed beyond the clock (a row registered or loaded "in
        2999"). Nothing already delivered changes: the periods a future watermark let through
        were delivered without the rows placed after it, and those rows move to the current
        period, which has not ended and so was not delivered.

        With the build's clock (var('export_now'), else now) and its tolerance
        (var('clock_skew_minutes')):
        - export_activities rows available after the tolerance but registered before it get
          `available_at` = the later of their registration and the clock; the same for
          export_broadcast_sends (their send);
        - export_watermark: `complete_until` and `registered_until` beyond the tolerance become
          the clock; a `loaded_until` beyond it becomes the latest `available_at` at or before
          the tolerance (before this repair), from where the next build reads again what the
          stall left unread;
        - touches beyond the tolerance are dropped; the next build touches the moved rows.
        Rows registered after the tolerance keep their place (their own registration). Run it
        once, with no dbt build at the same time; a second run changes nothing. -#}
    {%- set activities = built_relation_in_target('export_activities') -%}
    {%- set watermark = built_relation_in_target('export_watermark') -%}
    {%- set sends = built_relation_in_target('export_broadcast_sends') -%}
    {%- set touches = built_relation_in_target('export_broadcast_touches') -%}
    {%- if activities is none or watermark is none -%}
        {{ log('repair_future_watermarks: nothing built in ' ~ target.schema ~ ', nothing to repair', info=true) }}
        {{ return('') }}
    {%- endif -%}
    {%- set clock = build_clock() -%}
    {%- set tolerance = quarantine_after() -%}
    {%- set resume = constant_instant(
        'select max(available_at) from ' ~ activities ~ ' where available_at <= ' ~ tolerance
    ) or clock -%}
    {%- set statements = [
        'update ' ~ activities ~ ' set available_at = greatest(registered_at, ' ~ clock ~ ')'
        ~ ' where available_at > ' ~ tolerance ~ ' and registered_at <= ' ~ tolerance,
        'update ' ~ watermark ~ ' set complete_until = ' ~ clock ~ ' where complete_until > ' ~ tolerance,
        'update ' ~ watermark ~ ' set registered_until = ' ~ clock ~ ' where registered_until > ' ~ tolerance,
        'update ' ~ watermark ~ ' set loaded_until = ' ~ resume ~ ' where loaded_until > ' ~ tolerance,
    ] -%}
    {%- if sends is not none -%}
        {%- do statements.append(
            'update ' ~ sends ~ ' set available_at = greatest(sent_at, ' ~ clock ~ ')'
            ~ ' where available_at > ' ~ tolerance ~ ' and sent_at <= ' ~ tolerance
        ) -%}
    {%- endif -%}
    {%- if touches is not none -%}
        {%- do statements.append('delete from ' ~ touches ~ ' where touched_at > ' ~ tolerance) -%}
    {%- endif -%}
    {%- for statement in statements -%}
        {%- do run_query(statement) -%}
    {%- endfor -%}
    {#- an operation's statements are not committed on their own -#}
    {%- do adapter.commit() -%}
    {{ log('repair_future_watermarks: watermarks and rows beyond the clock brought back to it', info=true) }}
{%- endmacro %}
