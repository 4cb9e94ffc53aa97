"""What every benchmark script shares: a dbt workspace of its own and the machine's description."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def project_env(folder: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment for the CLI and dbt with target and log paths inside ``folder``."""
    env = {**os.environ, **extra}
    env["DBT_TARGET_PATH"] = str(folder / "target")
    env["DBT_LOG_PATH"] = str(folder / "logs")
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env.pop("DBT_PROFILES_DIR", None)
    return env


def copy_profiles(folder: Path) -> Path:
    """A profiles folder holding the example profile, as `make` sets one up."""
    profiles = folder / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "profiles.yml.example", profiles / "profiles.yml")
    return profiles


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {memory:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )
