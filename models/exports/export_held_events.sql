{{
    config(
        post_hook=[
            "{{ export_index(['event_id'], unique=true) }}",
        ],
    )
}}

{#- The e-mail events held back because their broadcast or customer row has not arrived: what
    int_events_unbuilt brought to this build and export_activities could not place. Each holds
    its brand's watermark at its registration (export_watermark); the next build reads this
    table again and places the event once the row is there. `missing` says which row: the
    broadcast (the channel is unknown until it arrives, so it may yet turn out not to be e-mail)
    or the customer (a customer in raw.erasures is not missing). Small: a table, rebuilt on
    every build. -#}

with

arrived as (

    select * from {{ ref('int_events_unbuilt') }}

),

activities as (

    select * from {{ ref('export_activities') }}

),

broadcasts as (

    select * from {{ ref('stg_platform__broadcasts') }}

),

customers as (

    select * from {{ ref('stg_platform__customers') }}

),

erasures as (

    select * from {{ ref('stg_platform__erasures') }}

),

unplaced as (

    select arrived.*
    from arrived
    where not exists (
        select 1
        from activities
        where activities.event_id = arrived.event_id
    )

),

missing_rows as (

    select
        unplaced.*,
        broadcasts.broadcast_id is null as is_broadcast_missing,
        customers.customer_id is null and erasures.customer_id is null as is_customer_missing
    from unplaced
    left join broadcasts
        on unplaced.broadcast_id = broadcasts.broadcast_id
    left join customers
        on
            unplaced.brand = customers.brand
            and unplaced.customer_id = customers.customer_id
    left join erasures
        on
            unplaced.brand = erasures.brand
            and unplaced.customer_id = erasures.customer_id

),

held as (

    select
        {{ event_delivery_columns() | join(',\n        ') }},
        cast(
            case when is_broadcast_missing then 'broadcast' else 'customer' end
            as varchar(16)
        ) as missing
    from missing_rows
    where is_broadcast_missing or is_customer_missing

)

select * from held
