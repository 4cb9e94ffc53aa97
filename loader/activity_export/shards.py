"""Splitting the nightly work over several scheduler workers: ``run --shard I/N``.

Each tenant belongs to exactly one of N shards, chosen by a stable hash of its brand code (the same
on every machine and every Python version, unlike ``hash()``), so N workers started with
``--shard 1/N`` … ``--shard N/N`` together deliver every tenant once.
"""

from __future__ import annotations

import hashlib
import re

from activity_export.errors import ConfigError


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; shards are numbered from 1."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ConfigError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/4")
    return int(match.group(1)), int(match.group(2))


def shard_of(brand: str, count: int) -> int:
    """The shard (1..count) a brand belongs to."""
    digest = hashlib.sha256(brand.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1
