{% macro event_delivery_columns() -%}
    {#- The columns of one event delivery, in the order base_platform__event_deliveries has them. -#}
    {{ return([
        'event_id', 'brand', 'broadcast_id', 'customer_id', 'event_type', 'occurred_at',
        'registered_at', 'loaded_at', 'email', 'url', 'os', 'device', 'browser', 'user_agent',
        'message',
    ]) }}
{%- endmacro %}
