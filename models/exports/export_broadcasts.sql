{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=["{{ replace_rows() }}"],
        post_hook=[
            "{{ export_index(['broadcast_id'], unique=true) }}",
        ],
    )
}}

with

broadcasts as (

    select * from {{ ref('stg_platform__broadcasts') }}

),

email_broadcasts as (

    select
        broadcast_id,
        brand,
        broadcast_type,
        description,
        subject,
        sent_at,
        campaign_id,
        from_address
    from broadcasts
    where is_email

)

select * from email_broadcasts
{{ cluster_by(['brand', 'broadcast_id']) }}
