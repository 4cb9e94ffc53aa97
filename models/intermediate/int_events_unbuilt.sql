{{ config(post_hook=["{{ analyze_relation() }}"]) }}

{#- The e-mail events this build has to place: delivered, of an exported type, on an e-mail
    broadcast or on a broadcast whose row has not arrived, and not yet in export_activities.
    One row per event (its first delivery), with its brand's watermark before this build.

    Which deliveries are read:
    - with var('loaded_at_column'): those loaded since the newest load seen by the previous
      build (export_watermark.loaded_until) less var('lookback_hours'), however old their
      registration: a late load is found and the cost does not grow with the history; plus the
      whole UTC load days in which the deliveries per brand no longer number what the previous
      build counted (int_event_load_days, var('load_check_days') before the window): a row
      committed out of order beyond the lookback, or replayed with its original load time;
    - without it: every delivery, anti-joined against export_activities (correct, but a read
      of all history on every build; docs/models.md has the cost);
    plus the events the previous build held (export_held_events) or quarantined
    (export_quarantined_events), so a held event is placed as soon as its broadcast or customer
    row arrives and a quarantined one once its time has come.

    `is_quarantined`: registered or loaded later than the build's own clock plus
    var('clock_skew_minutes') (a wrong clock upstream). Such an event moves no watermark and
    holds no brand: export_quarantined_events keeps it. export_activities inserts the others that
    can be placed; export_held_events keeps the rest. All read this one table, so they agree. -#}

{%- set built = built_relation('export_activities') -%}
{%- set held = built_relation('export_held_events') -%}
{%- set quarantined = built_relation('export_quarantined_events') -%}
{%- set watermark = built_relation('export_watermark') -%}
{%- set counted = built_relation('int_event_load_days') -%}
{%- set window_start = none -%}
{%- set days_again = [] -%}
{%- if var('loaded_at_column') and watermark is not none -%}
    {%- set lookback_start = 'select ' ~ dbt.dateadd('hour', -1 * var('lookback_hours'), 'max(loaded_until)') ~ ' from ' ~ watermark -%}
    {%- if counted is not none -%}
        {#- never later than where the previous build stopped counting: no gap between them -#}
        {%- set window_start = constant_instant(
            'select least((' ~ lookback_start ~ '), (select max(counted_until) from ' ~ counted ~ '))'
        ) -%}
        {%- set days_again = load_days_to_read_again(
            counted, ref('base_platform__event_deliveries'), lookback_start
        ) -%}
    {%- else -%}
        {%- set window_start = constant_instant(lookback_start) -%}
    {%- endif -%}
{%- endif %}

with

deliveries as (

    select * from {{ ref('base_platform__event_deliveries') }}
    {% if window_start is not none -%}
        where
            loaded_at >= {{ window_start }}
            {% for day in days_again -%}
                or (loaded_at >= to_timestamp({{ day }}) and loaded_at < to_timestamp({{ day + 86400 }}))
            {% endfor %}
    {%- endif %}

),

broadcasts as (

    select * from {{ ref('stg_platform__broadcasts') }}

),

activity_types as (

    select * from {{ ref('activity_types') }}

),

previous_watermarks as (

    {{ previous_watermarks() }}

),

unbuilt_deliveries as (

    select * from deliveries
    {% if built is not none -%}
        where not exists (
            select 1
            from {{ built }} as built
            where built.event_id = deliveries.event_id
        )
    {%- endif %}

),

previously_held as (

    {% if held is not none -%}
        select
            {{ event_delivery_columns() | join(',\n            ') }}
        from {{ held }}
    {%- else -%}
        select * from deliveries
        where 1 = 0
    {%- endif %}

),

previously_quarantined as (

    {% if quarantined is not none -%}
        select
            {{ event_delivery_columns() | join(',\n            ') }}
        from {{ quarantined }}
    {%- else -%}
        select * from deliveries
        where 1 = 0
    {%- endif %}

),

arrived as (

    select * from unbuilt_deliveries
    union all
    select * from previously_held
    union all
    select * from previously_quarantined

),

first_deliveries as (

    {{ first_delivery_per_event('arrived') }}

),

exportable as (

    select first_deliveries.*
    from first_deliveries
    inner join activity_types
        on first_deliveries.event_type = activity_types.event_type
    left join broadcasts
        on first_deliveries.broadcast_id = broadcasts.broadcast_id
    where
        activity_types.is_exported
        and (broadcasts.broadcast_id is null or broadcasts.is_email)

),

final as (

    select
        exportable.*,
        previous_watermarks.complete_until as previous_complete_until,
        (
            exportable.registered_at > {{ quarantine_after() }}
            or exportable.loaded_at > {{ quarantine_after() }}
        ) as is_quarantined
    from exportable
    left join previous_watermarks
        on exportable.brand = previous_watermarks.brand

)

select * from final
