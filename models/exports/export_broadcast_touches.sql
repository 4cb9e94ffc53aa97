{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['broadcast_id', 'touched_at'],
        on_schema_change='fail',
        full_refresh=false,
    )
}}

{#- One row per e-mail broadcast and UTC quarter hour in which it was sent or had activity
    registered. The broadcast file of any period [start, end) is then the broadcasts with a
    touch in that range: exact for every timezone, because periods start on quarter hours. -#}

with

broadcasts as (

    select * from {{ ref('export_broadcasts') }}

),

activities as (

    select * from {{ ref('export_activities') }}

),

sent as (

    select
        broadcast_id,
        brand,
        {{ quarter_hour_floor('sent_at') }} as touched_at
    from broadcasts
    where
        sent_at is not null
        {% if is_incremental() %}
            and sent_at >= {{ lookback_start('touched_at') }}
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

    select broadcast_id, brand, touched_at from sent
    union
    select broadcast_id, brand, touched_at from active

)

select * from touches
