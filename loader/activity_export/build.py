"""Running ``dbt build`` for the loader (``demo`` and ``run --build``).

dbt runs in a child process: the DuckDB file it writes must be closed again before the loader opens
it, and a dbt failure must not take the loader's process state with it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
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
    quiet: bool = True,
) -> None:
    """Run ``dbt build`` (seeds, models, tests) and raise ExportError when it fails."""
    command = [dbt_executable(), "build", "--project-dir", str(project_dir)]
    if profiles_dir is not None:
        command += ["--profiles-dir", str(profiles_dir)]
    if target:
        command += ["--target", target]
    if quiet:
        command += ["--quiet"]
    log.info("running %s", " ".join(command))
    completed = subprocess.run(command, check=False, capture_output=quiet, text=True)
    if completed.returncode != 0:
        output = (completed.stdout or "")[-4000:]
        raise ExportError(f"dbt build failed (exit {completed.returncode})\n{output}")
