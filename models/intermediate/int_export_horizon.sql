{#- One row: how far the event deliveries this project has seen reach, over all builds.
    `registered_until` is the newest registration among the e-mail events ever placed or held
    (never a quarantined one: registered or loaded after the build's clock, so no brand's
    watermark passes the clock of the build that set it);
    `loaded_until` the newest load (var('loaded_at_column'); registered_at without it). Both only
    grow: the previous build's values (export_watermark) are the floor. export_broadcast_touches
    counts sends up to registered_until and export_watermark lets no brand pass it. -#}

{%- set watermark = built_relation('export_watermark') %}

with

arrived as (

    select * from {{ ref('int_events_unbuilt') }}
    where not is_quarantined

),

previous as (

    {% if watermark is not none -%}
        select
            max(registered_until) as registered_until,
            max(loaded_until) as loaded_until
        from {{ watermark }}
    {%- else -%}
        select
            cast(null as timestamp with time zone) as registered_until,
            cast(null as timestamp with time zone) as loaded_until
    {%- endif %}

),

arrived_until as (

    select
        max(registered_at) as registered_until,
        max(loaded_at) as loaded_until
    from arrived

),

horizon as (

    select
        1 as horizon_id,
        greatest(previous.registered_until, arrived_until.registered_until) as registered_until,
        greatest(previous.loaded_until, arrived_until.loaded_until) as loaded_until
    from previous
    cross join arrived_until

)

select * from horizon
