{#- Every delivery of every event, typed and renamed. Ingestion can deliver one event twice
    (same event_id, a later registered_at); int_events_unbuilt keeps the first delivery of each
    event it has not built yet. `loaded_at` is the source's own load-time column named by
    var('loaded_at_column'); without one, registered_at stands in for it. -#}
with

source as (

    select * from {{ source('platform', 'events') }}

),

renamed as (

    select
        cast(event_id as bigint) as event_id,
        cast(brand as varchar(64)) as brand,
        cast(broadcast_id as bigint) as broadcast_id,
        cast(customer_id as bigint) as customer_id,
        cast(lower(event_type) as varchar(32)) as event_type,
        occurred_at,
        registered_at,
        {{ var('loaded_at_column') or 'registered_at' }} as loaded_at,
        cast(email as {{ dbt.type_string() }}) as email,
        cast(url as {{ dbt.type_string() }}) as url,
        cast(os as {{ dbt.type_string() }}) as os,
        cast(device as {{ dbt.type_string() }}) as device,
        cast(browser as {{ dbt.type_string() }}) as browser,
        cast(user_agent as {{ dbt.type_string() }}) as user_agent,
        cast(message as {{ dbt.type_string() }}) as message
    from source

)

select * from renamed
