{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        full_refresh=false,
        post_hook=[
            "{{ export_index(['event_id'], unique=true) }}",
            "{{ export_index(['available_at']) }}",
            "{{ export_index(['brand collate \"C\"', 'available_at']) }}",
            "{{ export_index(['brand collate \"C\"', 'available_at', 'registered_at'], where='(available_at > registered_at)') }}",
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

    Append-only: an incremental run inserts the events of int_events_unbuilt, which are not in
    the relation yet (it anti-joins them against it in the same build), and touches no built
    row: a duplicate delivered later never adds a row or moves an event. No second anti-join
    here: PostgreSQL estimates its result at one row and then joins the customers by nested
    loop, minutes on a long history. The unique index on event_id (PostgreSQL) and the unique
    test refuse a row twice, should int_events_unbuilt ever be stale (built in another
    invocation: build them together, as `dbt build` does). -#}

with

arrived as (

    select * from {{ ref('int_events_unbuilt') }}
    where not is_quarantined

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

placeable as (

    {#- joins, not `exists ... or exists ...`: PostgreSQL estimates that OR of two subplans so
        high that it compiles the query with JIT, which took longer than the query -#}
    select
        arrived.*,
        activity_types.export_label as activity,
        activity_types.description_source,
        customers.external_id,
        customers.email as customer_email
    from arrived
    inner join email_broadcasts
        on arrived.broadcast_id = email_broadcasts.broadcast_id
    inner join activity_types
        on arrived.event_type = activity_types.event_type
    left join customers
        on
            arrived.brand = customers.brand
            and arrived.customer_id = customers.customer_id
    left join erasures
        on
            arrived.brand = erasures.brand
            and arrived.customer_id = erasures.customer_id
    where
        activity_types.is_exported
        and (customers.customer_id is not null or erasures.customer_id is not null)

),

final as (

    select
        event_id,
        brand,
        broadcast_id,
        customer_id,
        external_id,
        coalesce(email, customer_email) as email,
        activity,
        occurred_at,
        registered_at,
        greatest(
            registered_at,
            coalesce(previous_complete_until, registered_at)
        ) as available_at,
        case description_source
            when 'url' then url
            when 'message' then message
        end as description,
        url,
        message,
        os,
        device,
        browser,
        user_agent
    from placeable

)

select * from final
{{ cluster_by(['brand', 'available_at']) }}
