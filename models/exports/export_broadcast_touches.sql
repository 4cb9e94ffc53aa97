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

{#- One row per e-mail broadcast and UTC quarter hour in which it was sent or had activity
    registered. The broadcast file of any period [start, end) is then the broadcasts with a
    touch in that range: exact for every timezone, because periods start on quarter hours.

    Sends count up to the newest registration built (the watermark), like activities do: the
    relation is complete up to the same instant, and a send stamped later than the activity
    data cannot push the incremental window past activities that still have to come. -#}

with

broadcasts as (

    select * from {{ ref('export_broadcasts') }}

),

activities as (

    select * from {{ ref('export_activities') }}

),

built_until as (

    {#- from the relation, not the `activities` CTE: a CTE read twice is materialized whole
        on PostgreSQL; this way it is an index lookup and the window an index range -#}
    select max(registered_at) as registered_until
    from {{ ref('export_activities') }}

),

sent as (

    select
        broadcasts.broadcast_id,
        broadcasts.brand,
        {{ quarter_hour_floor('broadcasts.sent_at') }} as touched_at
    from broadcasts
    inner join built_until
        on broadcasts.sent_at <= built_until.registered_until
    {% if is_incremental() %}
        where broadcasts.sent_at >= {{ lookback_start('touched_at') }}
    {% endif %}

),

active as (

    select
        broadcast_id,
        brand,
        {{ quarter_hour_floor('registered_at') }} as touched_at
    from activities
    {% if is_incremental() %}
        where registered_at >= {{ lookback_start('touched_at') }}
    {% endif %}

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
