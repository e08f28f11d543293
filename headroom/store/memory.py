"""The in-memory store: originals in a dict, for tests, one-shot library calls and a single
process that does not need them to outlive it.

It follows the same rules as the SQLite store (see `base`): zstd-compressed originals and
notes under content keys and names, expiry `ttl` seconds after last use, least-recently-used
eviction of originals and notes together above `max_bytes`, tombstones for what expired. Every
use takes the next number of one counter, so eviction follows the exact order of use. One lock
guards the state, so threads may share a store; compression runs outside the lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from headroom.errors import ExpiredKeyError
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

LOCATION = "memory://"


@dataclass(slots=True)
class _Entry:
    """One key's state: held while `body` is set, a tombstone once `expired_at` is."""

    digest: str
    body: bytes | None
    original_bytes: int
    last_used: float
    use: int
    """The store's use counter at the last use."""
    expired_at: float | None = None


@dataclass(slots=True)
class _Note:
    body: bytes
    last_used: float
    use: int


class MemoryStore:
    """A `Store` that lives in this process's memory."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Clock = time.time,
    ) -> None:
        check_limits(ttl, max_bytes)
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._held: OrderedDict[str, None] = OrderedDict()  # least recently used first
        self._stored_bytes = 0
        self._original_bytes = 0
        self._notes: OrderedDict[str, _Note] = OrderedDict()  # least recently used first
        self._note_bytes = 0
        self._uses = 0
        self._closed = False

    def put(self, text: str) -> str:
        data = encode(text)
        digest = digest_of(data)
        with self._lock:
            key = self._refresh(digest, self._clock())
        if key is not None:
            return key
        body = pack(data)
        with self._lock:
            now = self._clock()
            key = self._refresh(digest, now)
            if key is None:
                key = self._insert(digest, body, len(data), now)
        return key

    def get(self, key: str) -> str | None:
        with self._lock:
            self._check_open()
            now = self._clock()
            self._sweep(now)
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.body is None:
                raise ExpiredKeyError(key)
            self._use(key, now)
            body = entry.body
        return unpack(body, key, LOCATION)

    def touch(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._check_open()
            now = self._clock()
            self._sweep(now)
            for key in keys:
                if key in self._held:
                    self._use(key, now)

    def stats(self) -> StoreStats:
        with self._lock:
            self._check_open()
            self._sweep(self._clock())
            oldest = next(iter(self._held), None)
            return StoreStats(
                keys=len(self._held),
                expired=len(self._entries) - len(self._held),
                original_bytes=self._original_bytes,
                stored_bytes=self._stored_bytes,
                location=LOCATION,
                oldest_use=None if oldest is None else self._entries[oldest].last_used,
            )

    def remember(self, name: str, value: str) -> None:
        body = pack(encode(value))
        with self._lock:
            self._check_open()
            now = self._clock()
            self._forget(name)
            self._notes[name] = _Note(body, now, self._next_use())
            self._note_bytes += len(body)
            self._evict(now, keep_note=name)

    def recall(self, name: str) -> str | None:
        with self._lock:
            self._check_open()
            now = self._clock()
            note = self._notes.get(name)
            if note is None or note.last_used <= now - self.ttl:
                return None
            note.last_used, note.use = now, self._next_use()
            self._notes.move_to_end(name)
            body = note.body
        return unpack(body, f"note {name}", LOCATION)

    def purge(self, everything: bool = False) -> int:
        with self._lock:
            self._check_open()
            if everything:
                removed = len(self._entries) + len(self._notes)
                self._clear()
                return removed
            now = self._clock()
            stale = [name for name, note in self._notes.items() if note.last_used <= now - self.ttl]
            for name in stale:
                self._forget(name)
            removed = len(stale) + self._sweep(now)
            cutoff = now - TOMBSTONE_TTL
            for key, entry in list(self._entries.items()):
                if entry.expired_at is not None and entry.expired_at < cutoff:
                    del self._entries[key]
                    removed += 1
            return removed

    def verify(self) -> list[str]:
        with self._lock:
            self._check_open()
            held = [(key, entry.digest, entry.body) for key, entry in self._entries.items()]
        return [
            key
            for key, digest, body in held
            if body is not None and not is_intact(key, digest, body, LOCATION)
        ]

    def close(self) -> None:
        with self._lock:
            self._clear()
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(LOCATION)

    def _digest_at(self, key: str) -> str | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.digest

    def _refresh(self, digest: str, now: float) -> str | None:
        """The key of `digest` if it is held (its last use refreshed), else None."""
        self._check_open()
        self._sweep(now)
        key = derive_key(digest, self._digest_at)
        if key not in self._held:
            return None
        self._use(key, now)
        return key

    def _use(self, key: str, now: float) -> None:
        entry = self._entries[key]
        entry.last_used, entry.use = now, self._next_use()
        self._held.move_to_end(key)

    def _next_use(self) -> int:
        self._uses += 1
        return self._uses

    def _forget(self, name: str) -> None:
        note = self._notes.pop(name, None)
        if note is not None:
            self._note_bytes -= len(note.body)

    def _insert(self, digest: str, body: bytes, size: int, now: float) -> str:
        """Holds `body` under the key of `digest` (reviving a tombstone), then evicts."""
        key = derive_key(digest, self._digest_at)
        self._entries[key] = _Entry(digest, body, size, now, self._next_use())
        self._held[key] = None
        self._stored_bytes += len(body)
        self._original_bytes += size
        self._evict(now, keep_key=key)
        return key

    def _sweep(self, now: float) -> int:
        """Tombstones every held original whose ttl has run out; returns how many."""
        swept = 0
        while self._held:
            key = next(iter(self._held))
            entry = self._entries[key]
            if entry.last_used > now - self.ttl:
                break
            self._bury(key, entry.last_used + self.ttl)
            swept += 1
        return swept

    def _evict(self, now: float, keep_key: str | None = None, keep_note: str | None = None) -> None:
        """Drops the least recently used originals (to tombstones) and notes until the cap holds.

        `keep_key` or `keep_note`, just stored, stays even if it alone exceeds the cap: an
        output naming it is about to be forwarded, or a decision is about to be replayed.
        """
        while self._stored_bytes + self._note_bytes > self.max_bytes:
            key = next((k for k in self._held if k != keep_key), None)
            name = next((n for n in self._notes if n != keep_note), None)
            if key is not None and (name is None or self._entries[key].use < self._notes[name].use):
                self._bury(key, now)
            elif name is not None:
                self._forget(name)
            else:
                return

    def _bury(self, key: str, when: float) -> None:
        entry = self._entries[key]
        assert entry.body is not None, "only a held original can be buried"
        self._stored_bytes -= len(entry.body)
        self._original_bytes -= entry.original_bytes
        entry.body = None
        entry.expired_at = when
        del self._held[key]

    def _clear(self) -> None:
        self._entries.clear()
        self._notes.clear()
        self._note_bytes = 0
        self._held.clear()
        self._stored_bytes = 0
        self._original_bytes = 0
