with

source as (

    select * from {{ source('platform', 'customers') }}

),

renamed as (

    select
        cast(brand as varchar(64)) as brand,
        cast(customer_id as bigint) as customer_id,
        cast(external_id as {{ dbt.type_string() }}) as external_id,
        cast(email as {{ dbt.type_string() }}) as email
    from source

)

select * from renamed
