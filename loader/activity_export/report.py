"""What a run or the ledger says, as plain-text tables for people and JSON for machines."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from activity_export.deliver import Delivered, TenantReport
from activity_export.status import TenantStatus

if TYPE_CHECKING:
    from rich.progress import TaskID


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _first_words(text: str, limit: int) -> str:
    """The first line of ``text``, cut at a word to at most ``limit`` characters."""
    line = text.splitlines()[0] if text.strip() else text
    if len(line) <= limit:
        return line
    return line[: limit - 3].rsplit(" ", 1)[0] + "..."


def run_summary(reports: list[TenantReport]) -> str:
    """The table printed at the end of ``run``, ``backfill`` and ``demo``."""
    rows = []
    for report in reports:
        if report.error and report.with_the_run:  # the whole reason is printed once, below the table
            state = (
                "INTERRUPTED before it began" if report.interrupted else "FAILED: warehouse not read (below)"
            )
        elif report.error:
            state = ("INTERRUPTED: " if report.interrupted else "FAILED: ") + _first_words(report.error, 120)
        elif report.skipped:
            state = report.skipped
        elif report.planned:
            state = "would deliver " + ", ".join(p.label for p in report.planned)
        else:
            state = "ok"
        if report.overdue:
            first = report.overdue[0]
            state += f"; OVERDUE: {first.period.label} ({first.hours:.0f}h since due)"
            if len(report.overdue) > 1:
                state += f" and {len(report.overdue) - 1} more"
        rows.append(
            (
                report.tenant.brand,
                len(report.delivered),
                report.already,
                len(report.waiting),
                f"{sum(d.rows('activity') for d in report.delivered):,}",
                f"{sum(d.rows('broadcast') for d in report.delivered):,}",
                sum(len(d.files) for d in report.delivered),
                report.destination or "-",
                state,
            )
        )
    header = (
        "tenant",
        "delivered",
        "already",
        "waiting",
        "activities",
        "broadcasts",
        "files",
        "destination",
        "state",
    )
    return _table(header, rows)


def _state(report: TenantReport) -> str:
    if report.error:
        return "failed"
    if report.skipped:
        return "skipped"
    if report.planned:
        return "planned"
    return "ok"


def run_json(reports: list[TenantReport], now: datetime, *, dry_run: bool) -> dict[str, object]:
    """``run --json``: the run's outcome per tenant, as documented in docs/schemas/run.schema.json."""
    return {
        "now": now.isoformat(),
        "dry_run": dry_run,
        "ok": not any(report.failed or report.exit_code for report in reports),
        "tenants": [
            {
                "brand": report.tenant.brand,
                "destination": report.destination or report.tenant.destination.describe(),
                "state": _state(report),
                "error": report.error,
                "skipped": report.skipped,
                "already_delivered": report.already,
                "waiting": [period.label for period in report.waiting],
                "planned": [period.label for period in report.planned],
                "overdue": [overdue.as_dict() for overdue in report.overdue],
                "delivered": [
                    {
                        "period": delivered.period.label,
                        "start": delivered.period.start_utc.isoformat(),
                        "end": delivered.period.end_utc.isoformat(),
                        "seconds": round(delivered.seconds, 3),
                        "files": [
                            {
                                "kind": written.kind,
                                "path": str(written.relative),
                                "location": location,
                                "rows": written.rows,
                                "bytes": written.bytes,
                                "sha256": written.sha256,
                            }
                            for written, location in zip(delivered.files, delivered.locations, strict=False)
                        ],
                    }
                    for delivered in report.delivered
                ],
            }
            for report in reports
        ],
    }


def failure_payload(report: TenantReport, now: datetime) -> str:
    """The JSON a failure notification receives (no secrets: errors are already scrubbed).

    ``event`` is ``activity-export.tenant_failed`` when the tenant failed (or was interrupted),
    else ``activity-export.tenant_overdue``.
    """
    return json.dumps(
        {
            "event": "activity-export.tenant_failed" if report.failed else "activity-export.tenant_overdue",
            "brand": report.tenant.brand,
            "at": now.isoformat(),
            "error": report.error,
            "delivered": [d.period.label for d in report.delivered],
            "waiting": [p.label for p in report.waiting],
            "overdue": [o.as_dict() for o in report.overdue],
        }
    )


def notify(command: str, payload: str) -> str | None:
    """Run the failure-notification command with the payload on stdin; return a problem, if any."""
    try:
        completed = subprocess.run(  # noqa: S602 (the operator's own --on-failure command line)
            command, shell=True, input=payload, text=True, capture_output=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return f"notification command timed out: {command}"
    if completed.returncode != 0:
        return f"notification command exited {completed.returncode}: {command}"
    return None


# status --json's layout (docs/schemas/status.schema.json); 1 was a bare list of tenants
STATUS_JSON_VERSION = 2


def status_json(statuses: list[TenantStatus], now: datetime, unread: str | None) -> dict[str, object]:
    """``status --json``: the tenants, whether the warehouse was read (``unread``: why not), and
    ``ok``, false when a period is overdue or failed (what ``--fail-on-problem`` exits 1 for)."""
    return {
        "version": STATUS_JSON_VERSION,
        "now": now.isoformat(),
        "ok": not problem_tenants(statuses),
        "warehouse": {"read": unread is None, "error": unread},
        "tenants": [status.as_dict() for status in statuses],
    }


def problem_tenants(statuses: list[TenantStatus]) -> list[str]:
    """The tenants with an overdue or a failed period, as ``B: 2 overdue from 2026-11-04``."""
    found = []
    for status in statuses:
        counted = (
            [f"{len(status.overdue)} overdue from {status.overdue[0]['period']}"] if status.overdue else []
        )
        counted += [f"{len(status.failed)} failed from {status.failed[0]}"] if status.failed else []
        if counted:
            found.append(f"{status.brand}: {', '.join(counted)}")
    return found


def status_table(statuses: list[TenantStatus], *, verified: bool) -> str:
    def _few(labels: list[str]) -> str:
        if not labels:
            return "-"
        return ", ".join(labels[:3]) + (f" (+{len(labels) - 3})" if len(labels) > 3 else "")

    header = [
        "tenant",
        "last delivered",
        "periods",
        "pending",
        "waiting",
        "overdue",
        "failed",
        "rows",
        "late",
        "held",
        "bytes",
        "destination",
    ]
    if verified:
        header.append("drift")
    rows = []
    for status in statuses:
        row: list[object] = [
            status.brand,
            status.last_delivered or "-",
            status.delivered_periods,
            _few(status.pending),
            _few(status.waiting),
            _few([str(o["period"]) for o in status.overdue]),
            _few(status.failed),
            f"{status.rows:,}",
            f"{status.late_rows:,}",
            f"{status.held_rows:,}",
            f"{status.bytes:,}",
            status.destination + (" (CHANGED)" if status.destination_changed else ""),
        ]
        if verified:
            row.append(_few(status.drift))
        rows.append(row)
    notes = [
        f"webhook of {s.brand}: last {s.webhook['last_event']} event ({s.webhook['last_period']}) "
        f"{'accepted' if s.webhook['ok'] else 'NOT ACCEPTED'}: {s.webhook['detail']}; "
        f"{s.webhook['failures']} event(s) not accepted in all, "
        f"{s.webhook.get('pending', 0)} waiting to be sent again"
        for s in statuses
        if s.webhook and (not s.webhook["ok"] or s.webhook["failures"])
    ]
    notes += [f"{status.brand}: {warning}" for status in statuses for warning in status.warnings]
    return _table(header, rows) + ("\n\n" + "\n".join(notes) if notes else "")


class Progress:
    """A live bar of tenants done, on a terminal's stderr, and below it a line per period being
    written (its bytes so far, four times a second); the lines each period delivered writes
    (``logs.say``) print above it."""

    def __init__(self, tenants: int, *, interactive: bool) -> None:
        self._bar = None
        self._total = tenants
        self._writing: dict[str, TaskID] = {}  # brand -> its line while a period is written
        if interactive:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[detail]}"),
                console=Console(stderr=True),
            )
            self._task = self._bar.add_task("tenants", total=tenants, detail=f"0/{tenants}")
            self._bar.start()

    def writing(self, brand: str, label: str, kind: str, size: int) -> None:
        """A period's files being written: ``BRANDNAAM 2026-11-25 activity ... 312,400,000 bytes written``."""
        if self._bar is None:
            return
        description, detail = f"  {brand} {label} {kind}", f"{size:,} bytes written"
        line = self._writing.get(brand)
        if line is None:
            self._writing[brand] = self._bar.add_task(description, total=None, detail=detail)
        else:
            self._bar.update(line, description=description, detail=detail)

    def delivered(self, brand: str, delivered: Delivered) -> None:
        if self._bar is not None:
            self._done_writing(brand)
            self._bar.update(self._task, description=f"{brand} {delivered.period.label}")

    def tenant_done(self, brand: str) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)
            task = self._bar.tasks[self._task]
            self._bar.update(self._task, detail=f"{int(task.completed)}/{self._total}")
            self._done_writing(brand)

    def _done_writing(self, brand: str) -> None:
        line = self._writing.pop(brand, None)
        if line is not None and self._bar is not None:
            self._bar.remove_task(line)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
