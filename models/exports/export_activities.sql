{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        incremental_predicates=[
            'registered_at >= ' ~ lookback_start('registered_at'),
        ],
        on_schema_change='fail',
        full_refresh=false,
        post_hook=[
            "{{ export_index(['event_id'], unique=true) }}",
            "{{ export_index(['registered_at']) }}",
            "{{ export_index(['brand collate \"C\"', 'registered_at']) }}",
        ],
    )
}}

{#- One row per e-mail activity, in the period of its first registration.

    A full build reads every event (stg_platform__events, de-duplicated over all history). An
    incremental run reads only the deliveries registered since lookback_start(), keeps the first
    delivery of each event among them and leaves out the events already built with an earlier
    registration: a duplicate delivered later never adds a row or moves an event, and the run
    touches the lookback window only (registered_at and event_id indexes), however long the
    history is. The delete of delete+insert is limited to the same window (incremental_predicates).

    E-mail only: the join is to export_broadcasts (a table of e-mail broadcasts) rather than to
    a filter on the staging view, whose `lower(channel) = 'email'` PostgreSQL cannot estimate
    (it guessed one row and chose a nested loop over every customer for each event).
-#}

-- depends_on: {{ ref('base_platform__event_deliveries') }}
-- depends_on: {{ ref('stg_platform__events') }}

with

{% if is_incremental() %}

    deliveries as (

        select * from {{ ref('base_platform__event_deliveries') }}
        where registered_at >= {{ lookback_start('registered_at') }}

    ),

    first_deliveries as (

        {{ first_delivery_per_event('deliveries') }}

    ),

    events as (

        select * from first_deliveries
        where not exists (
            select 1
            from {{ this }} as built
            where
                built.event_id = first_deliveries.event_id
                and built.registered_at < {{ lookback_start('registered_at') }}
        )

    ),

{% else %}

    events as (

        select * from {{ ref('stg_platform__events') }}

    ),

{% endif %}

email_broadcasts as (

    select * from {{ ref('export_broadcasts') }}

),

customers as (

    select * from {{ ref('stg_platform__customers') }}

),

activity_types as (

    select * from {{ ref('activity_types') }}

),

email_activities as (

    select
        events.event_id,
        events.brand,
        events.broadcast_id,
        events.customer_id,
        activity_types.export_label as activity,
        activity_types.description_source,
        events.occurred_at,
        events.registered_at,
        events.email,
        events.url,
        events.message,
        events.os,
        events.device,
        events.browser,
        events.user_agent
    from events
    inner join email_broadcasts
        on events.broadcast_id = email_broadcasts.broadcast_id
    inner join activity_types
        on events.event_type = activity_types.event_type
    where activity_types.is_exported

),

final as (

    select
        email_activities.event_id,
        email_activities.brand,
        email_activities.broadcast_id,
        email_activities.customer_id,
        customers.external_id,
        coalesce(email_activities.email, customers.email) as email,
        email_activities.activity,
        email_activities.occurred_at,
        email_activities.registered_at,
        case email_activities.description_source
            when 'url' then email_activities.url
            when 'message' then email_activities.message
        end as description,
        email_activities.url,
        email_activities.message,
        email_activities.os,
        email_activities.device,
        email_activities.browser,
        email_activities.user_agent
    from email_activities
    left join customers
        on
            email_activities.brand = customers.brand
            and email_activities.customer_id = customers.customer_id

)

select * from final
