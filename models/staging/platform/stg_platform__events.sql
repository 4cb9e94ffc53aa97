{#- One row per event: ingestion can deliver an event twice, and the first registration wins,
    so an event is exported once, in the period it was first registered in. -#}
with

deliveries as (

    select * from {{ ref('base_platform__event_deliveries') }}

),

first_deliveries as (

    {{ first_delivery_per_event('deliveries') }}

)

select * from first_deliveries
