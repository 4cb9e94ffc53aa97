"""Stopping cleanly on SIGINT and SIGTERM.

The first signal only asks the run to stop: the handler sets an event that delivery checks at its
safe points (before a period, between files), so the file being published is finished and
recorded, temporary files are removed, attempts get an outcome and the summary is printed. The
command then exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM). A second signal
stops the process at once, the way the signal normally would, and its worker processes
(``run --processes``, listed in ``WORKERS``) with it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# process ids of the run's worker processes: they take no signal themselves (the run passes a stop
# on), so a second signal kills them here
WORKERS: set[int] = set()


@dataclass
class Received:
    """The signal that asked the run to stop, if any."""

    signum: int | None = None

    @property
    def exit_code(self) -> int | None:
        return 128 + self.signum if self.signum is not None else None


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[Received]:
    """Within the block, SIGINT and SIGTERM set ``stop`` instead of ending the process."""
    received = Received()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if received.signum is not None:  # the second one: stop now
            for worker in list(WORKERS):
                with suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        received.signum = signum
        stop.set()
        # straight to stderr: the logging lock may be held by the code this handler interrupted
        name = signal.Signals(signum).name
        os.write(2, f"{name} received: stopping at the next safe point (again to stop at once)\n".encode())

    if threading.current_thread() is not threading.main_thread():  # signals go to the main thread
        yield received
        return
    previous = {number: signal.signal(number, handler) for number in SIGNALS}
    try:
        yield received
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
