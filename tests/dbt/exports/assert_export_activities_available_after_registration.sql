{#- A row never becomes available before it was registered, and no event is both placed and
    held. Checks the recent window (var('data_test_days'); 0 checks all history). -#}
{{ config(where='recent_window(available_at)') }}

with

activities as (

    select * from {{ get_where_subquery(ref('export_activities')) }}

),

held as (

    select * from {{ ref('export_held_events') }}

),

wrong as (

    select
        activities.event_id,
        'available before registered' as problem
    from activities
    where activities.available_at < activities.registered_at
    union all
    select
        held.event_id,
        'placed and held' as problem
    from held
    inner join activities
        on held.event_id = activities.event_id

)

select * from wrong
