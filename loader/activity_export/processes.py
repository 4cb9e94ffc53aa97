"""One run over several worker processes (``run --processes N``).

A run's threads share one Python interpreter, so on a machine with several cores a run over
thousands of small tenants leaves cores idle while its threads wait for each other (measured in
docs/scaling.md). With ``--processes N`` the run's tenants are dealt out, in turn, to ``N`` worker
processes, each delivering its share ``--parallel`` at a time exactly as a run of one process does:
under each tenant's lock, on the run's one ledger, with the run's clock. The run itself plans
nothing and delivers nothing; it starts the workers, shows what they report as it happens (their
log lines go through its own logging, so ``--log-format json`` and the progress bar stay whole),
collects every tenant's report for the summary, the exit code and ``--on-failure``, and passes a
stop request (SIGINT, SIGTERM) on to them. Workers take no signal of their own: a stop reaches
them through the run, once, so each finishes the file it is publishing. A worker whose run is gone
(killed) stops at its next safe point; a worker that dies is a failure of each tenant it had,
whose ledger records say how far each got.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from typing import Any

from activity_export import logs
from activity_export.config import Tenant
from activity_export.deliver import Context, Delivered, TenantReport
from activity_export.ledger import Location
from activity_export.profile import Target
from activity_export.runs import Run, deliver_tenants
from activity_export.stopping import WORKERS

log = logging.getLogger(__name__)

# How often a worker looks whether its run asked it to stop or is gone, in seconds.
WATCH_SECONDS = 0.2


@dataclass(frozen=True)
class Share:
    """What one worker process is given: its tenants and everything the run decided for them."""

    index: int
    tenants: list[Tenant]
    location: Location
    context: Context  # without its stop event and callbacks, which do not cross processes
    target: Target
    parallel: int
    log_format: str
    log_level: int
    console_level: int
    show_writing: bool  # forward the bytes written so far (a progress bar is drawn)


def deal(tenants: list[Tenant], processes: int) -> list[list[Tenant]]:
    """The tenants dealt out in turn, the configuration's order kept within each share: shares
    differ by at most one tenant, and each holds tenants from all of the configuration."""
    count = max(1, min(processes, len(tenants)))
    return [tenants[i::count] for i in range(count)]


def deliver_in_processes(
    run: Run,
    target: Target,
    parallel: int,
    processes: int,
    on_tenant_done: Callable[[str], None] | None = None,
) -> list[TenantReport]:
    """Every tenant's report, delivered by ``processes`` worker processes (by this process alone
    for one tenant or one process), in the tenants' order."""
    tenants, context = run.tenants, run.context
    if processes < 2 or len(tenants) < 2:
        return deliver_tenants(run, target, parallel, on_tenant_done=on_tenant_done)
    shares = deal(tenants, processes)
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding threads and DuckDB
    messages = spawn.Queue()
    # a flag, not a multiprocessing Event: setting an Event a dead worker waited on never returns
    stop = spawn.RawValue("b", 0)
    root, console = logging.getLogger(), logging.getLogger(logs.CONSOLE)
    # a threading.Event and the run's callbacks cannot cross: each worker makes its own
    plain = replace(context, stop=None, on_delivered=None, on_writing=None)  # type: ignore[arg-type]
    workers = [
        spawn.Process(
            target=work,
            args=(
                Share(
                    index,
                    share,
                    run.location,
                    plain,
                    target,
                    parallel,
                    logs.current_format(),
                    root.getEffectiveLevel(),
                    console.getEffectiveLevel(),
                    context.on_writing is not None,
                ),
                messages,
                stop,
            ),
            name=f"activity-export worker {index + 1}/{len(shares)}",
        )
        for index, share in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
        WORKERS.add(worker.pid or 0)
    passing = threading.Thread(target=_pass_stop, args=(context.stop, stop, workers), daemon=True)
    passing.start()
    try:
        reports = _Collector(messages, context, on_tenant_done).collect(workers, shares)
    finally:
        stop.value = 1  # a worker still running (the run itself failed) stops at its next safe point
        for worker in workers:
            worker.join()
            WORKERS.discard(worker.pid or 0)
    by_brand = {report.tenant.brand: report for report in reports}
    return [by_brand[tenant.brand] for tenant in tenants]


def _pass_stop(asked: threading.Event, stop: Any, workers: Sequence[BaseProcess]) -> None:
    """The run's stop request, passed on to its workers once; ends when they all have."""
    while not asked.wait(WATCH_SECONDS):
        if not any(worker.is_alive() for worker in workers):
            return
    stop.value = 1


class _Collector:
    """What the workers send: log lines and progress, passed to the run's own, and at the end each
    worker's reports."""

    def __init__(self, messages: Any, context: Context, on_tenant_done: Callable[[str], None] | None) -> None:
        self.messages = messages
        self.context = context
        self.on_tenant_done = on_tenant_done
        self.reports: dict[int, list[TenantReport]] = {}

    def collect(self, workers: Sequence[BaseProcess], shares: list[list[Tenant]]) -> list[TenantReport]:
        """Until each worker has sent its tenants' reports or ended without them."""
        ended: dict[int, int] = {}  # worker -> its exit code, once it ended without sending reports
        while len(self.reports) + len(ended) < len(workers):
            if self.take():
                continue
            for index, worker in enumerate(workers):
                if index not in self.reports and index not in ended and worker.exitcode is not None:
                    while self.take():  # what it sent before it ended
                        pass
                    if index not in self.reports:
                        ended[index] = worker.exitcode
        found = [report for index in sorted(self.reports) for report in self.reports[index]]
        for index, code in ended.items():
            error = (
                f"worker process {index + 1} of {len(workers)} ended without a report ({_how(code)}); "
                "`activity-export status` shows how far this tenant got"
            )
            log.error("%s; its tenants: %s", error, ", ".join(t.brand for t in shares[index]))
            for tenant in shares[index]:
                report = TenantReport(tenant)
                report.fail(error)
                found.append(report)
        return found

    def take(self) -> bool:
        """Handle one message; False when none came for a moment."""
        try:
            message = self.messages.get(timeout=WATCH_SECONDS)
        except queue.Empty:
            return False
        kind = message[0]
        if kind == "log":
            record: logging.LogRecord = message[1]
            logging.getLogger(record.name).handle(record)
        elif kind == "delivered" and self.context.on_delivered:
            self.context.on_delivered(message[1], message[2])
        elif kind == "writing" and self.context.on_writing:
            self.context.on_writing(*message[1:])
        elif kind == "done" and self.on_tenant_done:
            self.on_tenant_done(message[1])
        elif kind == "reports":
            self.reports[message[1]] = message[2]
        return True


def _how(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


# -- in the worker process ---------------------------------------------------------------------


def work(share: Share, messages: Any, stop: Any) -> None:
    """A worker's life: deliver its share, send the reports, end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a stop comes through the run, once
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _log_through(messages, share)
    context = replace(share.context, stop=threading.Event())
    context.on_delivered = lambda brand, delivered: messages.put(("delivered", brand, _bare(delivered)))
    if share.show_writing:
        context.on_writing = lambda *progress: messages.put(("writing", *progress))
    threading.Thread(target=_watch_run, args=(stop, context.stop, os.getppid()), daemon=True).start()
    run = Run(share.tenants, share.location, context)
    try:
        reports = deliver_tenants(
            run, share.target, share.parallel, on_tenant_done=lambda brand: messages.put(("done", brand))
        )
    except Exception as exc:  # never without a report: each tenant fails with the reason
        log.debug("worker %d: unexpected error", share.index + 1, exc_info=True)
        reports = []
        for tenant in share.tenants:
            report = TenantReport(tenant)
            report.fail(f"unexpected error: {type(exc).__name__}: {exc}")
            reports.append(report)
    messages.put(("reports", share.index, reports))
    messages.close()
    messages.join_thread()


def _bare(delivered: Delivered) -> Delivered:
    """A delivered period as the run's progress needs it (no local paths cross)."""
    return replace(delivered, files=[], locations=[])


def _watch_run(stop: Any, asked: threading.Event, run_pid: int) -> None:
    """Ask this worker to stop when the run passes a stop request on, or is gone (killed)."""
    while not stop.value and os.getppid() == run_pid:
        time.sleep(WATCH_SECONDS)
    asked.set()


class _ToRun(logging.handlers.QueueHandler):
    """A worker's log line, sent to the run with its context (brand, period, kind) and fields,
    its message formatted and a traceback as text."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        sent = logging.makeLogRecord(record.__dict__)
        sent.msg, sent.args = record.getMessage(), None
        if record.exc_info:
            sent.exc_text = logging.Formatter().formatException(record.exc_info)
        sent.exc_info = None
        return sent

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put_nowait(("log", record))  # one queue carries logs, progress and reports


def _log_through(messages: Any, share: Share) -> None:
    """This worker's log lines and console lines go to the run, which writes them as its own."""
    logs.configure_worker(share.log_format)
    sender = _ToRun(messages)
    sender.addFilter(logs.add_context)
    root, console = logging.getLogger(), logging.getLogger(logs.CONSOLE)
    for logger, level in ((root, share.log_level), (console, share.console_level)):
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(sender)
        logger.setLevel(level)
    console.propagate = False
    chatty = share.log_level <= logging.DEBUG  # -vv, as ``logs.configure`` has it
    logging.getLogger("paramiko").setLevel(logging.INFO if chatty else logging.WARNING)
    logging.captureWarnings(True)
