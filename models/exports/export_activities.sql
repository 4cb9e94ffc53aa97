{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        on_schema_change='fail',
        full_refresh=false,
    )
}}

with

events as (

    select * from {{ ref('stg_platform__events') }}
    {% if is_incremental() %}
        where registered_at >= {{ lookback_start('registered_at') }}
    {% endif %}

),

broadcasts as (

    select * from {{ ref('stg_platform__broadcasts') }}

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
    inner join broadcasts
        on events.broadcast_id = broadcasts.broadcast_id
    inner join activity_types
        on events.event_type = activity_types.event_type
    where
        broadcasts.is_email
        and activity_types.is_exported

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
