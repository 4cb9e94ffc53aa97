{#- The erasure file's relation and the loader's list of erased customers: one row per brand and
    customer. The loader slices it on erased_at for the erasure file, and every activity slice
    joins it to leave out an erased customer's e-mail address and external id, also when an
    older period is written again. Small, and read by every slice: its rows are replaced whole on
    every build (replace_rows), the relation never is. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=["{{ replace_rows() }}"],
    )
}}

with

erasures as (

    select * from {{ ref('stg_platform__erasures') }}

),

final as (

    select
        brand,
        customer_id,
        erased_at
    from erasures

)

select * from final
