"""What the in-memory store does beyond the shared contract (see test_contract)."""

from __future__ import annotations

from collections.abc import Callable

from headroom.store import MemoryStore


def test_its_location_is_memory() -> None:
    assert MemoryStore().stats().location == "memory://"


def test_two_memory_stores_share_nothing() -> None:
    first, second = MemoryStore(), MemoryStore()
    key = first.put("only in the first")
    assert second.get(key) is None


def test_originals_are_held_compressed() -> None:
    store = MemoryStore()
    store.put("the same line\n" * 10_000)
    stats = store.stats()
    assert stats.original_bytes == 140_000
    assert stats.stored_bytes < stats.original_bytes // 100


def test_oldest_use_follows_the_least_recently_used_key(
    clock: Callable[[], float], advance: Callable[[float], None]
) -> None:
    store = MemoryStore(clock=clock)
    first = store.put("first")
    advance(10)
    store.put("second")
    advance(10)
    store.get(first)
    assert store.stats().oldest_use == clock() - 10
