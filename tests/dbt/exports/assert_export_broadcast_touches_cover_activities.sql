{#- The broadcast file of a period must hold every broadcast its activity file refers to: each
    activity's broadcast is touched in the quarter hour the activity became available in.
    Checks the recent window (var('data_test_days'); 0 checks all history). -#}
{{ config(where='recent_window(available_at)') }}

with

activities as (

    select * from {{ get_where_subquery(ref('export_activities')) }}

),

touches as (

    select * from {{ ref('export_broadcast_touches') }}

),

untouched as (

    select
        activities.event_id,
        activities.broadcast_id,
        activities.available_at
    from activities
    left join touches
        on
            activities.broadcast_id = touches.broadcast_id
            and {{ quarter_hour_floor('activities.available_at') }} = touches.touched_at
    where touches.broadcast_id is null

)

select * from untouched
