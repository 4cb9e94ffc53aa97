{% test unique_combination_of_columns(model, combination_of_columns) %}
    {#- Fails for every combination of the columns that occurs more than once. Compares the
        columns themselves, not a string glued from them, so types and nulls keep their meaning
        and an index on the columns can serve the test. -#}
    {%- set columns = combination_of_columns | join(', ') -%}
    with

    tested as (

        select {{ columns }}
        from {{ model }}

    ),

    duplicated as (

        select
            {{ columns }},
            count(*) as occurrences
        from tested
        group by {{ columns }}
        having count(*) > 1

    )

    select * from duplicated
{% endtest %}
