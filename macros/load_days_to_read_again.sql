{% macro load_days_to_read_again(counted, deliveries, fallback_until) -%}
    {#- The UTC load days (epoch seconds) whose deliveries, per brand, no longer number what the
        previous build counted (`counted`: int_event_load_days as it left it) in the same range
        [counted_from, counted_until): rows committed there since, out of order beyond the
        lookback or replayed with their original load time. A build reads those days again.
        `fallback_until` (a scalar query) bounds the range when nothing was counted. -#}
    {%- if not execute or counted is none -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set bounds = load_check_bounds(
        'select coalesce((select max(counted_until) from ' ~ counted ~ '), (' ~ fallback_until ~ '))'
    ) -%}
    {%- if bounds is none -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        with

        now_counted as (

            select
                brand,
                {{ utc_day_floor('loaded_at') }} as loaded_day,
                count(*) as deliveries
            from {{ deliveries }}
            where
                loaded_at < {{ bounds.until }}
                {% if bounds.since is not none -%}
                    and loaded_at >= {{ bounds.since }}
                {%- endif %}
            group by 1, 2

        ),

        counted as (

            select * from {{ counted }}

        ),

        changed as (

            select distinct coalesce(now_counted.loaded_day, counted.loaded_day) as loaded_day
            from now_counted
            full outer join counted
                on
                    now_counted.brand = counted.brand
                    and now_counted.loaded_day = counted.loaded_day
            where now_counted.deliveries is distinct from counted.deliveries

        )

        select floor(extract(epoch from loaded_day)) as loaded_day
        from changed
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | map('int') | list) }}
{%- endmacro %}
