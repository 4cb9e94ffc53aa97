"""What every benchmark script shares besides tests/support (the dbt workspace, PostgreSQL, sshd):
the machine's description."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {memory:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )
