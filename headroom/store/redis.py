"""The Redis store: originals in one Redis database, shared by every proxy (process or
machine) that names the same `redis://` URL.

It keeps the rules of `base` (content keys, zstd bodies, expiry `ttl` seconds after last use,
tombstones, least-recently-used eviction of originals and notes above `max_bytes`), and every
operation is one Lua script, so it is atomic with respect to every other client of the
database and costs one round trip. A put therefore compresses its text before asking whether
it is already held. Time comes from the caller's clock (passed into each script); the order
of use comes from a counter in Redis, so eviction follows the use order of all clients.

Everything lives under the `headroom:` prefix:

    headroom:o:<key>    hash: d digest, b zstd body (absent in a tombstone), n original bytes,
                        s stored bytes, t last use, e when it expired (tombstones only)
    headroom:n:<name>   hash: v zstd note, s its bytes, t last use
    headroom:held       zset of held keys, scored by use order (least recently used first)
    headroom:notes      zset of note names, scored by use order
    headroom:dead       zset of tombstoned keys, scored by when they expired
    headroom:usage      hash: original and stored bytes of held originals, bytes of notes
    headroom:seq        the use-order counter
    headroom:schema     the layout's version

The database should evict nothing itself (Redis's default `maxmemory-policy noeviction`):
`max_bytes` is the cap, and a key Redis dropped on its own would break the accounting.
A single server is expected, not Redis Cluster.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from headroom.errors import ConfigError, ExpiredKeyError, StoreError
from headroom.store.base import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TTL,
    TOMBSTONE_TTL,
    Clock,
    StoreStats,
    check_limits,
    closed_error,
    derive_key,
    digest_of,
    encode,
    is_intact,
    pack,
    unpack,
)
from headroom.store.redis_lua import PREFIX, SCRIPTS

FORMS = "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss://... for TLS)"
"""The Redis store URLs `parse_url` accepts."""
SCHEMA = b"1"
TIMEOUT = 10.0
"""Seconds to wait for the server's answer before giving up."""
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for the server to accept a connection."""
_BATCH = 1000  # entries purge drops per script run, so no run blocks the server for long
_VERIFY_PAGE = 64


@dataclass(frozen=True, slots=True)
class Target:
    """Where a Redis store URL points."""

    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: bool

    @property
    def location(self) -> str:
        """The URL without its credentials, to name the store in messages and stats."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{host}:{self.port}/{self.db}"


def parse_url(url: str) -> Target:
    """The server, database and credentials a `redis://` or `rediss://` URL names."""
    shown = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)

    def malformed(reason: str) -> ConfigError:
        return ConfigError(f"store url {shown!r}: {reason}; a Redis store url reads {FORMS}.")

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise malformed(f"the scheme {parts.scheme!r} is neither redis nor rediss")
    if parts.query or parts.fragment:
        raise malformed("options after '?' or '#' are not read")
    try:
        port = 6379 if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise malformed("the port is not a number from 1 to 65535")
    if not parts.hostname:
        raise malformed("the host is missing")
    db = parts.path.removeprefix("/")
    if db and not (db.isascii() and db.isdigit()):
        raise malformed(f"the database {db!r} is not a number")
    return Target(
        host=parts.hostname,
        port=port,
        db=int(db or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=parts.scheme == "rediss",
    )


def candidates(digest: str) -> list[str]:
    """The keys `derive_key` tries for `digest`, in order; the last one it falls back to."""
    tried: list[str] = []

    def taken(key: str) -> str:
        tried.append(key)
        return ""  # names no digest, so derive_key goes on to the next, longer key

    fallback = derive_key(digest, taken)
    return [*tried, fallback]


class RedisStore:
    """A `Store` in one Redis database."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = DEFAULT_TTL,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Clock = time.time,
    ) -> None:
        check_limits(ttl, max_bytes)
        self.target = parse_url(url)
        self.location = self.target.location
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._shas: dict[str, str] = {}
        self._client: redis.Redis | None = redis.Redis(
            host=self.target.host,
            port=self.target.port,
            db=self.target.db,
            username=self.target.username,
            password=self.target.password,
            ssl=self.target.tls,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=1),
        )
        with self._seam("connect"):
            self._prepare(self._client)

    def put(self, text: str) -> str:
        data = encode(text)
        body = pack(data)
        key = self._run("put", "store an original", body, len(data), *candidates(digest_of(data)))
        return str(key.decode())

    def get(self, key: str) -> str | None:
        found = self._run("get", "read an original", key)
        if found is None:
            return None
        if isinstance(found, int):
            raise ExpiredKeyError(key)
        return unpack(found, key, self.location)

    def touch(self, keys: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(keys))
        if wanted:
            self._run("touch", "refresh keys", *wanted)
        else:
            self._connected()

    def remember(self, name: str, value: str) -> None:
        self._run("remember", "keep a note", name, pack(encode(value)))

    def recall(self, name: str) -> str | None:
        found = self._run("recall", "read a note", name)
        return None if found is None else unpack(found, f"note {name}", self.location)

    def stats(self) -> StoreStats:
        keys, expired, original_bytes, stored_bytes, oldest = self._run("stats", "read the stats")
        return StoreStats(
            keys=int(keys),
            expired=int(expired),
            original_bytes=int(original_bytes),
            stored_bytes=int(stored_bytes),
            location=self.location,
            oldest_use=None if oldest is None else float(oldest),
        )

    def purge(self, everything: bool = False) -> int:
        removed = 0
        while True:
            if everything:
                dropped = self._run("purge_all", "purge the store", _BATCH)
                more = dropped > 0
            else:
                dropped, tombstones = self._run(
                    "purge", "purge expired originals", TOMBSTONE_TTL, _BATCH
                )
                more = tombstones == _BATCH
            removed += int(dropped)
            if not more:
                return removed

    def verify(self) -> list[str]:
        damaged: dict[str, None] = {}
        with self._seam("verify the originals"):
            client = self._connected()
            page: list[str] = []
            for member, _ in client.zscan_iter(f"{PREFIX}held", count=_VERIFY_PAGE):
                page.append(member.decode())
                if len(page) == _VERIFY_PAGE:
                    damaged.update(dict.fromkeys(self._damaged(client, page)))
                    page = []
            damaged.update(dict.fromkeys(self._damaged(client, page)))
        return list(damaged)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with self._seam("close the store"):
                client.close()

    def _damaged(self, client: redis.Redis, keys: list[str]) -> list[str]:
        """The keys among `keys` whose held body does not check out."""
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(f"{PREFIX}o:{key}", "d", "b")
        return [
            key
            for key, (digest, body) in zip(keys, pipe.execute(), strict=True)
            if body is not None and not is_intact(key, digest.decode(), body, self.location)
        ]

    def _prepare(self, client: redis.Redis) -> None:
        """Loads the scripts and checks the database's layout, in one round trip."""
        pipe = client.pipeline(transaction=False)
        for source in SCRIPTS.values():
            pipe.script_load(source)
        pipe.set(f"{PREFIX}schema", SCHEMA, nx=True)
        pipe.get(f"{PREFIX}schema")
        *shas, _, schema = pipe.execute()
        self._shas = dict(zip(SCRIPTS, shas, strict=True))
        if schema != SCHEMA:
            raise StoreError(
                f"store {self.location}: its layout (schema {schema!r}) is not one this headroom "
                "knows; upgrade headroom, or point it at another database (the /DB in the url)."
            )

    def _run(self, name: str, action: str, *args: str | bytes | int | float) -> Any:
        """Runs script `name` with the clock, ttl and cap before `args`."""
        head = (repr(float(self._clock())), repr(float(self.ttl)), self.max_bytes)
        with self._seam(action):
            client = self._connected()
            try:
                return client.evalsha(self._shas[name], 0, *head, *args)
            except redis.exceptions.NoScriptError:
                # the server restarted or its script cache was flushed
                self._shas[name] = client.script_load(SCRIPTS[name])
                return client.evalsha(self._shas[name], 0, *head, *args)

    def _connected(self) -> redis.Redis:
        if self._client is None:
            raise closed_error(self.location)
        return self._client

    @contextmanager
    def _seam(self, action: str) -> Iterator[None]:
        """Turns the client's errors into a StoreError that says what to check."""
        try:
            yield
        except redis.exceptions.RedisError as exc:
            raise StoreError(_explain(self.location, self.target, action, exc)) from exc


def _explain(location: str, target: Target, action: str, exc: redis.RedisError) -> str:
    """A StoreError message for a Redis failure: what failed and what to check."""
    said = f"store {location}: could not {action}: {str(exc).rstrip('.')}."
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return f"{said} Check the user and password in the store url."
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return (
            f"{said} Check that redis-server is running at {target.host}:{target.port} and "
            "reachable from here, and that the url's scheme matches the server (rediss:// for TLS)."
        )
    return (
        f"{said} Check the server's log: the database must have memory to spare (maxmemory), "
        f"and the url's user may need access to every key under {PREFIX}."
    )
