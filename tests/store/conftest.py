"""Fixtures for the store tests: a clock the test moves by hand, and each backend behind one
factory so the contract suite runs the same tests against every store (Redis: the session's
real redis-server, see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headroom.store import MemoryStore, SQLiteStore, Store
from headroom.store.redis import RedisStore

START = 1_700_000_000.0


class _Clock:
    """Seconds since the epoch, standing still until `advance` is called."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def _clock() -> _Clock:
    return _Clock()


@pytest.fixture
def clock(_clock: _Clock) -> Callable[[], float]:
    """The time the stores see; it moves only through `advance`."""
    return _clock


@pytest.fixture
def advance(_clock: _Clock) -> Callable[[float], None]:
    """Moves the stores' clock forward by a number of seconds."""

    def advance(seconds: float) -> None:
        _clock.now += seconds

    return advance


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Callable[[], float]
) -> Iterator[Callable[..., Store]]:
    """Opens stores of one backend on the test's clock (SQLite: files in tmp_path; Redis:
    the session's server, its database emptied for the test)."""
    opened: list[Store] = []
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""

    def make(**options: Any) -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore(clock=clock, **options)
        elif request.param == "redis":
            store = RedisStore(redis_url, clock=clock, **options)
        else:
            store = SQLiteStore(tmp_path / f"store{len(opened)}.db", clock=clock, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    """A store of each backend with the default ttl and size cap."""
    return make_store()
