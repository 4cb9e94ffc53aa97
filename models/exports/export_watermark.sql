{#- How far the built export relations are complete: every e-mail activity registered before
    `registered_until` is in export_activities, and every broadcast sent or touched before it is
    in export_broadcast_touches. The loader ships a period only when its end is at or before this
    instant. The watermark is built after both relations and their tests (`dbt build` skips it
    when one fails), so a failed or skipped build leaves the previous, lower watermark in place
    and never yields a partial file. -#}

-- depends_on: {{ ref('export_broadcast_touches') }}

with

activities as (

    select * from {{ ref('export_activities') }}

),

watermark as (

    select
        1 as watermark_id,
        max(registered_at) as registered_until,
        count(*) as activity_count
    from activities

)

select * from watermark
