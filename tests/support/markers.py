"""Markers by folder: the conftest.py of each test folder marks every test under it with what the
folder's tests need (``-m "not sshd"`` and the like select on them)."""

from __future__ import annotations

from pathlib import Path

import pytest


def mark_folder(items: list[pytest.Item], folder: Path, *markers: str) -> None:
    """Add ``markers`` to the collected ``items`` that live under ``folder``."""
    for item in items:
        if item.path.is_relative_to(folder):
            for marker in markers:
                item.add_marker(marker)
