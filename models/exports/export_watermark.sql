{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='brand',
        on_schema_change='fail',
        full_refresh=false,
    )
}}

{#- Per brand: how far the built export relations are complete. The loader ships a period of a
    brand only when its end is at or before the brand's `complete_until`: the horizon of all
    deliveries seen (int_export_horizon), or the registration of the brand's earliest held event
    if that is earlier. It never goes back (the previous value is the floor), which is what
    makes export_activities.available_at land every late or held row in a period not exported
    yet. Built last, after the export relations and their tests (`dbt build` skips it when one
    fails), so a failed build leaves the previous watermark and never yields a partial file.
    One row for every brand in broadcasts, customers or events. -#}

-- depends_on: {{ ref('export_broadcast_touches') }}
-- depends_on: {{ ref('export_activities') }}

with

arrived as (

    select * from {{ ref('int_events_unbuilt') }}

),

held_events as (

    select * from {{ ref('export_held_events') }}

),

horizon as (

    select * from {{ ref('int_export_horizon') }}

),

broadcasts as (

    select * from {{ ref('stg_platform__broadcasts') }}

),

customers as (

    select * from {{ ref('stg_platform__customers') }}

),

previous as (

    {% if is_incremental() -%}
        select
            brand,
            complete_until
        from {{ this }}
    {%- else -%}
        {{ previous_watermarks(enabled=false) }}
    {%- endif %}

),

brands as (

    select brand from previous
    union
    select brand from broadcasts
    union
    select brand from customers
    union
    select brand from arrived

),

holds as (

    select
        brand,
        count(*) as held_events,
        min(registered_at) as held_since
    from held_events
    group by brand

),

watermarks as (

    select
        cast(brands.brand as varchar(64)) as brand,
        greatest(
            previous.complete_until,
            least(horizon.registered_until, holds.held_since)
        ) as complete_until,
        cast(coalesce(holds.held_events, 0) as bigint) as held_events,
        holds.held_since,
        horizon.registered_until,
        horizon.loaded_until
    from brands
    cross join horizon
    left join previous
        on brands.brand = previous.brand
    left join holds
        on brands.brand = holds.brand

)

select * from watermarks
