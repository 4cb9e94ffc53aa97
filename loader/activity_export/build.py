"""Running ``dbt build`` for the loader (``demo`` and ``run --build``).

dbt runs in a child process: the DuckDB file it writes must be closed again before the loader opens
it, and a dbt failure must not take the loader's process state with it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import deque
from pathlib import Path

from activity_export.errors import ExportError

log = logging.getLogger(__name__)


def dbt_executable() -> str:
    """The ``dbt`` installed next to this Python (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_build(
    project_dir: Path,
    profiles_dir: Path | None,
    target: str | None,
    *,
    progress: bool = False,
) -> None:
    """Run ``dbt build`` (seeds, models, tests) and raise ExportError when it fails.

    With ``progress`` (a terminal watches) dbt's own lines, a model at a time, go to stderr as
    they come, so a long build is seen to move; otherwise dbt is quiet. stdout stays the
    command's own (``run --json``). A failure carries the end of dbt's output either way.
    """
    command = [dbt_executable(), "build", "--project-dir", str(project_dir)]
    if profiles_dir is not None:
        command += ["--profiles-dir", str(profiles_dir)]
    if target:
        command += ["--target", target]
    if not progress:
        command += ["--quiet"]
    log.info("running %s", " ".join(command))
    tail: deque[str] = deque(maxlen=200)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            tail.append(line)
            if progress:
                sys.stderr.write(line)
                sys.stderr.flush()
    if process.returncode != 0:
        output = "".join(tail)[-4000:]
        raise ExportError(f"dbt build failed (exit {process.returncode})\n{output}")
