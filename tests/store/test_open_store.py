"""open_store: which URLs open which backend, and what any other URL is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from headroom.errors import ConfigError
from headroom.store import MemoryStore, SQLiteStore, open_store


def test_memory_url_opens_a_memory_store() -> None:
    store = open_store("memory://", ttl=60, max_bytes=1_000)
    assert isinstance(store, MemoryStore)
    assert (store.ttl, store.max_bytes) == (60, 1_000)


def test_four_slashes_name_an_absolute_sqlite_path(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/abs.db", ttl=60)
    try:
        assert isinstance(store, SQLiteStore)
        assert store.path == str(tmp_path / "abs.db")
        assert store.ttl == 60
    finally:
        store.close()


def test_three_slashes_name_a_path_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///sub/relative.db")
    store.close()
    assert (tmp_path / "sub" / "relative.db").is_file()


def test_a_tilde_means_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    open_store("sqlite:///~/.headroom/store.db").close()
    assert (tmp_path / ".headroom" / "store.db").is_file()


@pytest.mark.parametrize(
    "url", ["", "memory:", "sqlite://", "sqlite:///", "sqlite://host/x.db", "postgres://db"]
)
def test_any_other_url_is_a_config_error_naming_the_accepted_forms(url: str) -> None:
    with pytest.raises(ConfigError, match=r"memory://, sqlite:////absolute/path\.db"):
        open_store(url)


def test_a_bad_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ttl"):
        open_store("memory://", ttl=0)
