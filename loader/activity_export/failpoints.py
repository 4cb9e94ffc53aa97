"""Named points where the crash tests stop the loader (``ACTIVITY_EXPORT_FAILPOINT=name``).

Exactly-once is only believable if it survives a SIGKILL at the worst moments; these let the test
suite put the kill exactly there. ``name:pause`` instead announces ``paused at NAME`` on stderr and
waits there until the run is asked to stop (a signal), so a test can send SIGINT or SIGTERM at that
very moment; ``name:wait`` announces ``waiting at NAME`` and goes on when a line arrives on stdin,
so a test can change the world around a run at that moment. Unset, a failpoint is one dictionary
lookup.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

VARIABLE = "ACTIVITY_EXPORT_FAILPOINT"
PLACES = ("after-write", "mid-upload", "after-upload")
# what the variable may hold: a place (SIGKILL there), ``place:pause`` or ``place:wait``
POINTS = (*PLACES, *(f"{place}:{mode}" for place in PLACES for mode in ("pause", "wait")))
PAUSE_SECONDS = 120.0

_stop = threading.Event()


def watch(stop: threading.Event) -> None:
    """The event a paused failpoint waits for (the run's stop request)."""
    global _stop
    _stop = stop


def hit(name: str) -> None:
    """Kill this process with SIGKILL when the failpoint ``name`` is armed; pause at ``name:pause``
    (until stopped), wait at ``name:wait`` (for a line on stdin)."""
    armed = os.environ.get(VARIABLE)
    if armed == name:
        os.kill(os.getpid(), signal.SIGKILL)
    elif armed == f"{name}:pause":
        print(f"paused at {name}", file=sys.stderr, flush=True)
        _stop.wait(PAUSE_SECONDS)
    elif armed == f"{name}:wait":
        print(f"waiting at {name}", file=sys.stderr, flush=True)
        sys.stdin.readline()
