"""Named points where the crash tests kill the loader (``ACTIVITY_EXPORT_FAILPOINT=name``).

Exactly-once is only believable if it survives a SIGKILL at the worst moments; these let the test
suite put the kill exactly there. Unset, a failpoint is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "ACTIVITY_EXPORT_FAILPOINT"
POINTS = ("after-write", "mid-upload", "after-upload")


def hit(name: str) -> None:
    """Kill this process with SIGKILL when the failpoint ``name`` is armed."""
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
