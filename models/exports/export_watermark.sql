{#- How far the built export relations are complete: every e-mail activity registered before
    `registered_until` is in export_activities. The loader ships a period only when its end is
    at or before this instant, so a failed or skipped build never yields a partial file. -#}
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
