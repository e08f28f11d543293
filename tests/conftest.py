"""Shared test set-up: every test gets its own headroom home, so no test touches ~/.headroom;
tests that need Redis share one real redis-server and get an empty database each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests import redis_server

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(autouse=True)
def headroom_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "headroom-home"
    monkeypatch.setenv("HEADROOM_HOME", str(home))
    monkeypatch.delenv("HEADROOM_STORE", raising=False)
    return home


@pytest.fixture(scope="session")
def _redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = redis_server.start(tmp_path_factory.mktemp("redis"))
    yield server.url
    redis_server.stop(server)


@pytest.fixture
def redis_url(_redis_server: str) -> str:
    """The URL of a database on the session's redis-server, emptied for this test."""
    with redis.Redis.from_url(_redis_server) as client:
        client.flushdb()
    return _redis_server
