{#- Exactly-once: every exported event sits at its first registration, so a duplicate
    delivered later (in the same or a later incremental run) never moved it to a later period. -#}
with

activities as (

    select * from {{ ref('export_activities') }}

),

events as (

    select * from {{ ref('stg_platform__events') }}

),

moved as (

    select
        activities.event_id,
        activities.registered_at as exported_registered_at,
        events.registered_at as first_registered_at
    from activities
    inner join events
        on activities.event_id = events.event_id
    where activities.registered_at <> events.registered_at

)

select * from moved
