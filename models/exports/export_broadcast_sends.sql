{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        full_refresh=false,
        post_hook=[
            "{{ export_index(['broadcast_id'], unique=true) }}",
        ],
    )
}}

{#- One row per sent e-mail broadcast, with the time from which its send counts as available,
    fixed once like export_activities.available_at: the later of `sent_at` and its brand's
    watermark before the build that first saw it sent. export_broadcast_touches touches the
    broadcast in that quarter hour, so a broadcast row that arrives (or whose sent_at is filled
    in) after its brand's watermark passed the send is listed in the broadcast file of the first
    period still open, not in none.

    Sends count up to the horizon (int_export_horizon.registered_until), so no brand's watermark
    passes a send that is not here yet. The first build of this relation takes every send at
    its sent_at: on a deployment that already delivered files, those sends were listed then.
    Append-only: an incremental run inserts the sends it does not hold yet (an anti-join on
    broadcast_id over a small table). -#}

with

broadcasts as (

    select * from {{ ref('export_broadcasts') }}

),

horizon as (

    select * from {{ ref('int_export_horizon') }}

),

previous_watermarks as (

    {{ previous_watermarks(enabled=is_incremental()) }}

),

new_sends as (

    select
        broadcasts.broadcast_id,
        broadcasts.brand,
        broadcasts.sent_at
    from broadcasts
    inner join horizon
        on broadcasts.sent_at <= horizon.registered_until
    {% if is_incremental() -%}
        where not exists (
            select 1
            from {{ this }} as built
            where built.broadcast_id = broadcasts.broadcast_id
        )
    {%- endif %}

),

final as (

    select
        new_sends.broadcast_id,
        new_sends.brand,
        new_sends.sent_at,
        greatest(
            new_sends.sent_at,
            coalesce(previous_watermarks.complete_until, new_sends.sent_at)
        ) as available_at
    from new_sends
    left join previous_watermarks
        on new_sends.brand = previous_watermarks.brand

)

select * from final
