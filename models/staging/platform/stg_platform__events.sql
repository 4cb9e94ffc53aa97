{#- Ingestion can deliver one event twice: keep its first registration, so an event is
    exported once, in the period it was first registered in. -#}
with

source as (

    select * from {{ source('platform', 'events') }}

),

ranked as (

    select
        cast(event_id as bigint) as event_id,
        cast(brand as varchar(64)) as brand,
        cast(broadcast_id as bigint) as broadcast_id,
        cast(customer_id as bigint) as customer_id,
        cast(lower(event_type) as varchar(32)) as event_type,
        occurred_at,
        registered_at,
        cast(email as {{ dbt.type_string() }}) as email,
        cast(url as {{ dbt.type_string() }}) as url,
        cast(os as {{ dbt.type_string() }}) as os,
        cast(device as {{ dbt.type_string() }}) as device,
        cast(browser as {{ dbt.type_string() }}) as browser,
        cast(user_agent as {{ dbt.type_string() }}) as user_agent,
        cast(message as {{ dbt.type_string() }}) as message,
        row_number() over (
            partition by event_id
            order by registered_at, occurred_at
        ) as delivery_number
    from source

),

deduplicated as (

    select
        event_id,
        brand,
        broadcast_id,
        customer_id,
        event_type,
        occurred_at,
        registered_at,
        email,
        url,
        os,
        device,
        browser,
        user_agent,
        message
    from ranked
    where delivery_number = 1

)

select * from deduplicated
