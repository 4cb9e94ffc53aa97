{#- Customers erased under the GDPR, one row per brand and customer (the first erasure).
    raw.erasures is optional: without it this view is empty, with the same columns and types. -#}
with

source as (

    {{ optional_source(
        source('platform', 'erasures'),
        "select cast(null as text) as brand, cast(null as bigint) as customer_id,"
        ~ " cast(null as timestamp with time zone) as erased_at where 1 = 0"
    ) }}

),

renamed as (

    select
        cast(brand as varchar(64)) as brand,
        cast(customer_id as bigint) as customer_id,
        min(cast(erased_at as timestamp with time zone)) as erased_at
    from source
    group by 1, 2

)

select * from renamed
