{#- The pre-hook of an export relation whose rows every build computes whole: on an incremental
    build, its previous rows are deleted in the same transaction that inserts the new ones. The
    relation itself is never replaced, so a run reading a period meanwhile (one snapshot) sees the
    rows as they were, where a table materialization's new relation under the same name would
    read empty to it (tests/warehouse/test_build_during_run.py). -#}
{% macro replace_rows() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
    {%- endif -%}
{%- endmacro %}
