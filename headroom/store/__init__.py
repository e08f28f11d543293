"""The store of originals behind every key a compressed output names, and `open_store`,
which picks a backend from a URL:

    memory://                      this process only, gone when it exits
    sqlite:////abs/path/store.db   one SQLite file, shared by processes (four slashes: absolute)
    sqlite:///relative/store.db    the same, relative to the working directory
"""

from __future__ import annotations

import os

from headroom.errors import ConfigError
from headroom.store.base import DEFAULT_MAX_BYTES, DEFAULT_TTL, Store, StoreStats
from headroom.store.memory import MemoryStore
from headroom.store.sqlite import SQLiteStore

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TTL",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "StoreStats",
    "open_store",
]

_ACCEPTED = "memory://, sqlite:////absolute/path.db or sqlite:///relative/path.db"
_SQLITE = "sqlite:///"


def open_store(url: str, *, ttl: float = DEFAULT_TTL, max_bytes: int = DEFAULT_MAX_BYTES) -> Store:
    """The store `url` names; a URL of any other form is a ConfigError."""
    if url == "memory://":
        return MemoryStore(ttl=ttl, max_bytes=max_bytes)
    if url.startswith(_SQLITE) and url != _SQLITE:
        path = os.path.expanduser(url[len(_SQLITE) :])
        return SQLiteStore(path, ttl=ttl, max_bytes=max_bytes)
    scheme = url.partition("://")[0]
    if scheme == "redis":
        raise ConfigError(
            f"store url {url!r}: redis stores are not yet supported; use {_ACCEPTED}."
        )
    raise ConfigError(f"store url {url!r} is not one headroom can open; use {_ACCEPTED}.")
