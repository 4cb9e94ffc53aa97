"""Shards: every tenant is delivered by exactly one of the workers that split the tenants."""

from __future__ import annotations

from activity_export.shards import parse_shard, shard_of


def test_every_tenant_lands_in_exactly_one_shard() -> None:
    brands = [f"BRAND{i:04d}" for i in range(1000)]
    for count in (1, 3, 8):
        shards = [[b for b in brands if shard_of(b, count) == index] for index in range(1, count + 1)]
        assert sorted(b for shard in shards for b in shard) == sorted(brands)
        assert min(len(shard) for shard in shards) > len(brands) / count / 2  # roughly even
    assert parse_shard("2/4") == (2, 4)
