"""The statements both ledgers run, with SQLite's ``?`` placeholders (``postgres.py`` turns them
into ``%s``). The two differ only where their SQL does: schema, locking, returning ids, arrays.
"""

SELECT_TENANT = "select * from tenants where config = ? and brand = ?"
LAST_DELIVERED_END = (
    "select max(period_end) as last_end from deliveries where config = ? and brand = ? "
    "and destination = ? and status = 'delivered' and kind = 'activity'"
)
SET_SCHEDULE = "update tenants set schedule = ?, schedule_from = ? where config = ? and brand = ?"
ACCEPT_DESTINATION = (
    "update tenants set destination = ?, first_period = ?, accepted_from = ?, accepted_at = ? "
    "where config = ? and brand = ?"
)
SELECT_RECORDS = (
    "select * from deliveries where config = ? and brand = ? and destination = ? order by period_start, kind"
)
SELECT_PERIOD_RECORDS = (
    "select * from deliveries where config = ? and brand = ? and destination = ? and period_start = ?"
)
FINISH_ATTEMPT = "update attempts set finished_at = ?, outcome = ?, error = ? where attempt_id = ?"
INTERRUPT_UNFINISHED = (
    "update attempts set outcome = 'interrupted', finished_at = ?, "
    "error = 'the run ended before this attempt finished' "
    "where config = ? and brand = ? and outcome is null"
)
SELECT_ATTEMPTS = (
    "select period_label, outcome from attempts where config = ? and brand = ? and destination = ? "
    "order by attempt_id"
)
UPSERT_UPLOADING = """
    insert into deliveries (config, brand, destination, kind, period_start, period_end,
        period_label, status, remote_path, rows, bytes, sha256, attempts, started_at)
    values (?, ?, ?, ?, ?, ?, ?, 'uploading', ?, ?, ?, ?, 1, ?)
    on conflict (config, brand, destination, kind, period_start) do update set
        status = 'uploading', remote_path = excluded.remote_path,
        rows = excluded.rows, bytes = excluded.bytes, sha256 = excluded.sha256,
        attempts = deliveries.attempts + 1, started_at = excluded.started_at,
        error = null
"""
MARK_DELIVERED = """
    update deliveries set status = 'delivered', delivered_at = ?, remote_path = ?, error = null
    where config = ? and brand = ? and destination = ? and kind = ? and period_start = ?
"""
UPSERT_FAILED = """
    insert into deliveries (config, brand, destination, kind, period_start, period_end,
        period_label, status, attempts, started_at, error)
    values (?, ?, ?, ?, ?, ?, ?, 'failed', 1, ?, ?)
    on conflict (config, brand, destination, kind, period_start) do update set
        status = case when deliveries.status = 'delivered' then 'delivered' else 'failed' end,
        attempts = case when deliveries.status = 'uploading'
                        then deliveries.attempts else deliveries.attempts + 1 end,
        error = excluded.error
"""
UPSERT_COUNTS = """
    insert into periods (config, brand, destination, period_start, period_label, late_rows,
        held_rows, recorded_at)
    values (?, ?, ?, ?, ?, ?, ?, ?)
    on conflict (config, brand, destination, period_start) do update set
        late_rows = excluded.late_rows, held_rows = excluded.held_rows,
        recorded_at = excluded.recorded_at
"""
SELECT_COUNTS = (
    "select period_label, late_rows, held_rows from periods "
    "where config = ? and brand = ? and destination = ? order by period_start"
)
INSERT_WEBHOOK = """
    insert into webhooks (config, brand, destination, period_label, event, delivery_id, ok,
        attempts, detail, sent_at)
    values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_LAST_WEBHOOK = (
    "select event, period_label, ok, detail, sent_at from webhooks where config = ? and brand = ? "
    "order by sent_at desc, webhook_id desc limit 1"
)
COUNT_WEBHOOK_FAILURES = "select count(*) as failures from webhooks where config = ? and brand = ? and ok = 0"
# Schema 4: an event the webhook did not accept is kept (its exact body, pending = 1) and sent
# again by later runs, with the same id, until accepted or given up.
INSERT_WEBHOOK_EVENT = """
    insert into webhooks (config, brand, destination, period_label, event, delivery_id, ok,
        attempts, detail, sent_at, body, pending, created_at)
    values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_PENDING_WEBHOOKS = (
    "select delivery_id, event, period_label, body, created_at from webhooks "
    "where config = ? and brand = ? and pending = 1 order by webhook_id"
)
UPDATE_WEBHOOK = (
    "update webhooks set ok = ?, pending = ?, attempts = attempts + ?, detail = ?, sent_at = ? "
    "where config = ? and brand = ? and delivery_id = ?"
)
COUNT_PENDING_WEBHOOKS = (
    "select count(*) as pending from webhooks where config = ? and brand = ? and pending = 1"
)
