"""The store of originals behind every key a compressed output names, and `open_store`,
which picks a backend from a URL:

    memory://                      this process only, gone when it exits
    sqlite:////abs/path/store.db   one SQLite file, shared by processes (four slashes: absolute)
    sqlite:///relative/store.db    the same, relative to the working directory
    redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]
                                   one Redis database, shared by processes and machines
                                   (port 6379 and database 0 unless given; rediss:// for TLS)
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

_ACCEPTED = (
    "memory://, sqlite:////absolute/path.db, sqlite:///relative/path.db or "
    "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss://... for TLS)"
)
_SQLITE = "sqlite:///"


def open_store(url: str, *, ttl: float = DEFAULT_TTL, max_bytes: int = DEFAULT_MAX_BYTES) -> Store:
    """The store `url` names; a URL of any other form is a ConfigError, and a Redis server
    that does not answer is a StoreError."""
    if url == "memory://":
        return MemoryStore(ttl=ttl, max_bytes=max_bytes)
    if url.startswith(_SQLITE) and url != _SQLITE:
        path = os.path.expanduser(url[len(_SQLITE) :])
        return SQLiteStore(path, ttl=ttl, max_bytes=max_bytes)
    if url.startswith(("redis://", "rediss://")):
        # Imported here: the Redis client costs ~60 ms at import, paid only by its users.
        from headroom.store.redis import RedisStore

        return RedisStore(url, ttl=ttl, max_bytes=max_bytes)
    raise ConfigError(f"store url {url!r} is not one headroom can open; use {_ACCEPTED}.")
