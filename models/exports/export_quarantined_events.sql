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

{#- The e-mail events quarantined because they were registered or loaded later than the clock
    of the build that read them, beyond var('clock_skew_minutes'): a wrong clock upstream. They
    move no watermark and hold no brand; the next build reads this table again and places each
    one once its time has come, in the first period still open then. `status` counts them per
    brand. Small: its rows are replaced whole on every build (replace_rows). -#}

-- depends_on: {{ ref('export_activities') }}

with

arrived as (

    select * from {{ ref('int_events_unbuilt') }}

),

quarantined as (

    select
        {{ event_delivery_columns() | join(',\n        ') }},
        cast(
            case when registered_at > {{ quarantine_after() }} then 'registered_at' else 'loaded_at' end
            as varchar(16)
        ) as quarantined_on
    from arrived
    where is_quarantined

)

select * from quarantined
