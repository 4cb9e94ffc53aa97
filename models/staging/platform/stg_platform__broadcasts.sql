with

source as (

    select * from {{ source('platform', 'broadcasts') }}

),

renamed as (

    select
        cast(broadcast_id as bigint) as broadcast_id,
        cast(brand as varchar(64)) as brand,
        cast(upper(broadcast_type) as varchar(64)) as broadcast_type,
        cast(lower(channel) as varchar(16)) as channel,
        cast(description as {{ dbt.type_string() }}) as description,
        cast(subject as {{ dbt.type_string() }}) as subject,
        sent_at,
        cast(campaign_id as bigint) as campaign_id,
        cast(from_address as {{ dbt.type_string() }}) as from_address,
        lower(channel) = 'email' as is_email
    from source

)

select * from renamed
