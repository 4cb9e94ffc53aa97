{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['broadcast_id', 'touched_at'],
        on_schema_change='fail',
        full_refresh=false,
        post_hook=[
            "{{ export_index(['touched_at', 'broadcast_id'], unique=true) }}",
            "{{ export_index(['brand collate \"C\"', 'touched_at']) }}",
        ],
    )
}}

{#- One row per e-mail broadcast and UTC quarter hour in which it was sent or in which an
    activity on it became available (export_activities.available_at). The broadcast file of any
    period [start, end) is then the broadcasts with a touch in that range: exact for every
    timezone, because periods start on quarter hours, and it follows the activity file wherever
    a late or held activity lands.

    A send touches the quarter hour of its export_broadcast_sends.available_at: its sent_at, or
    for a broadcast row that arrived after its brand's watermark passed the send, the watermark
    then, like a late activity. An incremental run adds the touches of every brand from its
    watermark before this build on: everything a period not exported yet can hold. Activities
    are read from the lowest of those watermarks on (an index range on available_at), plus the
    ones placed in this build (a brand seen for the first time has no watermark yet). -#}

-- depends_on: {{ ref('int_events_unbuilt') }}

{%- set window_start = none -%}
{%- if is_incremental() -%}
    {%- set window_start = constant_instant('select min(complete_until) from (' ~ previous_watermarks() ~ ') as previous') -%}
{%- endif %}

with

sends as (

    select * from {{ ref('export_broadcast_sends') }}

),

activities as (

    select * from {{ ref('export_activities') }}

),

placed_now as (

    {#- a CTE of its own, so that each one is read once and PostgreSQL inlines it: a CTE read
        twice is materialized whole, all history of export_activities -#}
    select placed.*
    from {{ ref('export_activities') }} as placed
    where placed.event_id in (select unbuilt.event_id from {{ ref('int_events_unbuilt') }} as unbuilt)

),

previous_watermarks as (

    {{ previous_watermarks(enabled=is_incremental()) }}

),

sent as (

    select
        sends.broadcast_id,
        sends.brand,
        {{ quarter_hour_floor('sends.available_at') }} as touched_at
    from sends
    left join previous_watermarks
        on sends.brand = previous_watermarks.brand
    where
        previous_watermarks.complete_until is null
        or sends.available_at >= previous_watermarks.complete_until

),

recent_activities as (

    select
        broadcast_id,
        brand,
        available_at
    from activities
    {% if window_start is not none -%}
        where available_at >= {{ window_start }}
    {%- endif %}
    union
    select
        broadcast_id,
        brand,
        available_at
    from placed_now

),

active as (

    select
        recent_activities.broadcast_id,
        recent_activities.brand,
        {{ quarter_hour_floor('recent_activities.available_at') }} as touched_at
    from recent_activities
    left join previous_watermarks
        on recent_activities.brand = previous_watermarks.brand
    where
        previous_watermarks.complete_until is null
        or recent_activities.available_at >= previous_watermarks.complete_until

),

touches as (

    select
        broadcast_id,
        brand,
        touched_at
    from sent
    union
    select
        broadcast_id,
        brand,
        touched_at
    from active

)

select * from touches
{{ cluster_by(['brand', 'touched_at']) }}
