{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        full_refresh=false,
        post_hook=[
            "{{ export_index(['event_id'], unique=true) }}",
            "{{ export_index(['available_at']) }}",
            "{{ export_index(['brand collate \"C\"', 'available_at']) }}",
        ],
    )
}}

{#- One row per e-mail activity, placed once and never moved.

    The rows come from int_events_unbuilt: the events not built yet (new deliveries, late loads
    and events held by an earlier build). An event is placed when its e-mail broadcast is known
    and its customer is known or erased; the others stay in export_held_events. Its
    `available_at` is fixed here, once: the later of its registration and its brand's watermark
    before this build. The loader only ships periods that end at or before the watermark, and the
    watermark only grows, so a row always lands in a period not exported yet, and a period's file
    is the same whenever it is written again.

    Append-only: an incremental run inserts events not in the relation yet and touches no built
    row (a duplicate delivered later never adds a row or moves an event). -#}

with

unbuilt as (

    select * from {{ ref('int_events_unbuilt') }}

),

email_broadcasts as (

    select * from {{ ref('export_broadcasts') }}

),

customers as (

    select * from {{ ref('stg_platform__customers') }}

),

erasures as (

    select * from {{ ref('stg_platform__erasures') }}

),

activity_types as (

    select * from {{ ref('activity_types') }}

),

arrived as (

    select * from unbuilt
    {% if is_incremental() -%}
        where not exists (
            select 1
            from {{ this }} as built
            where built.event_id = unbuilt.event_id
        )
    {%- endif %}

),

placeable as (

    select
        arrived.*,
        activity_types.export_label as activity,
        activity_types.description_source
    from arrived
    inner join email_broadcasts
        on arrived.broadcast_id = email_broadcasts.broadcast_id
    inner join activity_types
        on arrived.event_type = activity_types.event_type
    where
        activity_types.is_exported
        and (
            exists (
                select 1
                from customers
                where
                    customers.brand = arrived.brand
                    and customers.customer_id = arrived.customer_id
            )
            or exists (
                select 1
                from erasures
                where
                    erasures.brand = arrived.brand
                    and erasures.customer_id = arrived.customer_id
            )
        )

),

final as (

    select
        placeable.event_id,
        placeable.brand,
        placeable.broadcast_id,
        placeable.customer_id,
        customers.external_id,
        coalesce(placeable.email, customers.email) as email,
        placeable.activity,
        placeable.occurred_at,
        placeable.registered_at,
        greatest(
            placeable.registered_at,
            coalesce(placeable.previous_complete_until, placeable.registered_at)
        ) as available_at,
        case placeable.description_source
            when 'url' then placeable.url
            when 'message' then placeable.message
        end as description,
        placeable.url,
        placeable.message,
        placeable.os,
        placeable.device,
        placeable.browser,
        placeable.user_agent
    from placeable
    left join customers
        on
            placeable.brand = customers.brand
            and placeable.customer_id = customers.customer_id

)

select * from final
