{#- The completeness check's count: the deliveries per brand and UTC load day loaded in
    [counted_from, counted_until), where counted_until is where the next build's read window
    starts (this build's loaded_until less var('lookback_hours')) and counted_from
    var('load_check_days') before it (all history with 0). The next build counts the same range
    again and reads every day whose count changed (int_events_unbuilt): a row committed out of
    order beyond the lookback, or a replay with its original load time, is found, not lost.

    Built after the export relations (it depends on them): when one fails, it is skipped and the
    next build compares with the count of the last build that placed what it read. Empty without
    var('loaded_at_column'): every build then reads all deliveries anyway. -#}

-- depends_on: {{ ref('export_activities') }}
-- depends_on: {{ ref('export_held_events') }}
-- depends_on: {{ ref('export_quarantined_events') }}

{%- set bounds = none -%}
{%- if var('loaded_at_column') -%}
    {%- set bounds = load_check_bounds(
        'select ' ~ dbt.dateadd('hour', -1 * var('lookback_hours'), 'loaded_until') ~ ' from ' ~ ref('int_export_horizon')
    ) -%}
{%- endif %}

with

deliveries as (

    select * from {{ ref('base_platform__event_deliveries') }}
    {% if bounds is not none -%}
        where
            loaded_at < {{ bounds.until }}
            {% if bounds.since is not none -%}
                and loaded_at >= {{ bounds.since }}
            {%- endif %}
    {%- else -%}
        where 1 = 0
    {%- endif %}

),

counted as (

    select
        brand,
        {{ utc_day_floor('loaded_at') }} as loaded_day,
        count(*) as deliveries
    from deliveries
    group by 1, 2

),

final as (

    select
        brand,
        loaded_day,
        deliveries,
        {{ bounds.until if bounds is not none else 'cast(null as timestamp with time zone)' }} as counted_until
    from counted

)

select * from final
