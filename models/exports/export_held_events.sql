{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=["{{ replace_rows() }}"],
        post_hook=[
            "{{ export_index(['event_id'], unique=true) }}",
        ],
    )
}}

{#- The e-mail events held back because their broadcast or customer row has not arrived: what
    int_events_unbuilt brought to this build and export_activities could not place (the same
    rule from the other side: broadcast or customer row missing). Each holds
    its brand's watermark at its registration (export_watermark); the next build reads this
    table again and places the event once the row is there. `missing` says which row: the
    broadcast (the channel is unknown until it arrives, so it may yet turn out not to be e-mail)
    or the customer (a customer in raw.erasures is not missing). Small: its rows are
    replaced whole on every build (replace_rows). -#}

-- depends_on: {{ ref('export_activities') }}

with

arrived as (

    select * from {{ ref('int_events_unbuilt') }}
    where not is_quarantined

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

missing_rows as (

    select
        arrived.*,
        broadcasts.broadcast_id is null as is_broadcast_missing,
        customers.customer_id is null and erasures.customer_id is null as is_customer_missing
    from arrived
    left join broadcasts
        on arrived.broadcast_id = broadcasts.broadcast_id
    left join customers
        on
            arrived.brand = customers.brand
            and arrived.customer_id = customers.customer_id
    left join erasures
        on
            arrived.brand = erasures.brand
            and arrived.customer_id = erasures.customer_id

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
