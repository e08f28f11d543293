"""The SQLite store: originals in one file (by default under `~/.headroom/`), shared by every
process that opens it.

The file is created private (mode 0600, a new directory 0700) and runs in WAL mode, so readers
do not block the writer. Several processes may use it at once: every write is one short
`BEGIN IMMEDIATE` transaction, a connection that finds the file busy waits up to `busy_timeout`
seconds, and compression happens outside transactions. The schema is built by the migrations
of `sqlite_schema`, whose triggers keep running totals of originals and notes, so the size cap
is checked without a scan; both are evicted together, least recently used first (in a tie,
within one clock tick, the original goes first, then the entry written first). Threads may
share a store (one connection behind a lock); open a store in each process rather than
carrying one across `fork`.
"""

from __future__ import annotations

import heapq
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from headroom.errors import ExpiredKeyError, StoreError
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
from headroom.store.sqlite_schema import migrate

DEFAULT_BUSY_TIMEOUT = 10.0
"""Seconds a connection waits for another process's write before giving up."""
_CHUNK = 500  # keys per `IN (...)`, well under SQLite's bound-parameter limit


class SQLiteStore:
    """A `Store` in one SQLite file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Clock = time.time,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        check_limits(ttl, max_bytes)
        self.path = os.path.abspath(os.fspath(path))
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        with self._seam("open the store"):
            self._conn: sqlite3.Connection | None = self._open()

    def put(self, text: str) -> str:
        data = encode(text)
        digest = digest_of(data)
        with self._transaction("store an original") as conn:
            key = self._refresh(conn, digest, self._clock())
        if key is not None:
            return key
        body = pack(data)
        with self._transaction("store an original") as conn:
            now = self._clock()
            key = self._refresh(conn, digest, now)
            if key is None:
                key = self._insert(conn, digest, body, len(data), now)
        return key

    def get(self, key: str) -> str | None:
        with self._transaction("read an original") as conn:
            now = self._clock()
            row = conn.execute(
                "SELECT body, last_used, expired_at FROM originals WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            body, last_used, expired_at = row
            if expired_at is None and last_used <= now - self.ttl:
                self._sweep(conn, now)
                body = None
            elif expired_at is None:
                conn.execute("UPDATE originals SET last_used = ? WHERE key = ?", (now, key))
        if body is None:
            raise ExpiredKeyError(key)
        return unpack(body, key, self.path)

    def touch(self, keys: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(keys))
        with self._transaction("refresh keys") as conn:
            now = self._clock()
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                conn.execute(
                    "UPDATE originals SET last_used = ? WHERE expired_at IS NULL "
                    f"AND last_used > ? AND key IN ({', '.join('?' * len(chunk))})",
                    (now, now - self.ttl, *chunk),
                )

    def remember(self, name: str, value: str) -> None:
        body = pack(encode(value))
        with self._transaction("keep a note") as conn:
            now = self._clock()
            # Deleted and inserted (not replaced) so the triggers see both and the note is
            # the newest row: the last written wins a tie in use time.
            conn.execute("DELETE FROM notes WHERE name = ?", (name,))
            conn.execute(
                "INSERT INTO notes (name, value, last_used, stored_bytes) VALUES (?, ?, ?, ?)",
                (name, body, now, len(body)),
            )
            self._evict(conn, now, keep_name=name)

    def recall(self, name: str) -> str | None:
        with self._transaction("read a note") as conn:
            now = self._clock()
            row = conn.execute(
                "SELECT value, last_used FROM notes WHERE name = ?", (name,)
            ).fetchone()
            if row is None or row[1] <= now - self.ttl:
                return None
            conn.execute("UPDATE notes SET last_used = ? WHERE name = ?", (now, name))
        return unpack(row[0], f"note {name}", self.path)

    def stats(self) -> StoreStats:
        with self._transaction("read the stats") as conn:
            self._sweep(conn, self._clock())
            keys, original_bytes, stored_bytes = conn.execute(
                "SELECT keys, original_bytes, stored_bytes FROM usage"
            ).fetchone()
            (expired,) = conn.execute(
                "SELECT COUNT(*) FROM originals WHERE expired_at IS NOT NULL"
            ).fetchone()
            (oldest,) = conn.execute(
                "SELECT MIN(last_used) FROM originals WHERE expired_at IS NULL"
            ).fetchone()
        return StoreStats(
            keys=keys,
            expired=expired,
            original_bytes=original_bytes,
            stored_bytes=stored_bytes,
            location=self.path,
            oldest_use=oldest,
        )

    def purge(self, everything: bool = False) -> int:
        with self._transaction("purge expired originals") as conn:
            if everything:
                removed: int = conn.execute("DELETE FROM originals").rowcount
                removed += conn.execute("DELETE FROM notes").rowcount
            else:
                now = self._clock()
                removed = conn.execute(
                    "DELETE FROM notes WHERE last_used <= ?", (now - self.ttl,)
                ).rowcount
                removed += self._sweep(conn, now)
                removed += conn.execute(
                    "DELETE FROM originals WHERE expired_at < ?", (now - TOMBSTONE_TTL,)
                ).rowcount
        with self._lock, self._seam("compact the file"):
            # executescript steps the pragma to the end; execute would free one page only
            self._connection().executescript("PRAGMA incremental_vacuum;")
        return removed

    def verify(self) -> list[str]:
        damaged: list[str] = []
        after = 0
        while True:
            with self._transaction("verify the originals", write=False) as conn:
                rows = conn.execute(
                    "SELECT rowid, key, digest, body FROM originals "
                    "WHERE expired_at IS NULL AND rowid > ? ORDER BY rowid LIMIT 64",
                    (after,),
                ).fetchall()
            if not rows:
                return damaged
            for rowid, key, digest, body in rows:
                after = rowid
                if not is_intact(key, digest, body, self.path):
                    damaged.append(key)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with self._seam("close the store"):
                    conn.close()

    def _open(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self._enter_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, self._clock())
        except BaseException:
            conn.close()
            raise
        return conn

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switches a new file to WAL; SQLite does not wait on a busy file for this, so we do."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise closed_error(self.path)
        return self._conn

    @contextmanager
    def _seam(self, action: str) -> Iterator[None]:
        """Turns the file's and SQLite's errors into a StoreError that says what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(_explain(self.path, action, exc, self._busy_timeout)) from exc
        except OSError as exc:
            raise StoreError(
                f"store {self.path}: could not {action}: {exc}. Check that its directory exists "
                "or can be created and that you may write there, or choose another path."
            ) from exc

    @contextmanager
    def _transaction(self, action: str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One short transaction; a write takes the file's write lock at once."""
        with self._lock, self._seam(action):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.execute("COMMIT")

    def _digest_at(self, conn: sqlite3.Connection) -> Callable[[str], str | None]:
        def digest_at(key: str) -> str | None:
            row = conn.execute("SELECT digest FROM originals WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return digest_at

    def _refresh(self, conn: sqlite3.Connection, digest: str, now: float) -> str | None:
        """The key of `digest` if it is held (its last use refreshed), else None."""
        self._sweep(conn, now)
        key = derive_key(digest, self._digest_at(conn))
        updated = conn.execute(
            "UPDATE originals SET last_used = ? WHERE key = ? AND expired_at IS NULL", (now, key)
        )
        return key if updated.rowcount else None

    def _insert(
        self, conn: sqlite3.Connection, digest: str, body: bytes, size: int, now: float
    ) -> str:
        """Holds `body` under the key of `digest` (reviving a tombstone), then evicts."""
        key = derive_key(digest, self._digest_at(conn))
        conn.execute(
            "INSERT INTO originals (key, digest, body, original_bytes, stored_bytes, last_used) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET body = excluded.body, "
            "original_bytes = excluded.original_bytes, stored_bytes = excluded.stored_bytes, "
            "last_used = excluded.last_used, expired_at = NULL",
            (key, digest, body, size, len(body), now),
        )
        self._evict(conn, now, keep_key=key)
        return key

    def _sweep(self, conn: sqlite3.Connection, now: float) -> int:
        """Tombstones every held original whose ttl has run out; returns how many."""
        swept = conn.execute(
            "UPDATE originals SET body = NULL, expired_at = last_used + ? "
            "WHERE expired_at IS NULL AND last_used <= ?",
            (self.ttl, now - self.ttl),
        )
        return swept.rowcount

    def _evict(
        self, conn: sqlite3.Connection, now: float, keep_key: str = "", keep_name: str = ""
    ) -> None:
        """Drops the least recently used originals (to tombstones) and notes until the cap holds.

        `keep_key` or `keep_name`, just stored, stays even if it alone exceeds the cap: an
        output naming it is about to be forwarded, or a decision is about to be replayed.
        """
        (stored, notes) = conn.execute("SELECT stored_bytes, note_bytes FROM usage").fetchone()
        excess: int = stored + notes - self.max_bytes
        if excess <= 0:
            return
        originals = conn.execute(
            "SELECT last_used, 0, rowid, key, stored_bytes FROM originals "
            "WHERE expired_at IS NULL AND key != ? ORDER BY last_used, rowid",
            (keep_key,),
        )
        named = conn.execute(
            "SELECT last_used, 1, rowid, name, stored_bytes FROM notes WHERE name != ? "
            "ORDER BY last_used, rowid",
            (keep_name,),
        )
        buried: list[str] = []
        forgotten: list[str] = []
        for _, table, _, name, size in heapq.merge(originals, named):
            (forgotten if table else buried).append(name)
            excess -= size
            if excess <= 0:
                break
        originals.close()
        named.close()
        conn.executemany(
            "UPDATE originals SET body = NULL, expired_at = ? WHERE key = ?",
            [(now, key) for key in buried],
        )
        conn.executemany("DELETE FROM notes WHERE name = ?", [(name,) for name in forgotten])


def _explain(path: str, action: str, exc: sqlite3.Error, busy_timeout: float) -> str:
    """A StoreError message for a SQLite failure: what failed and what to do about it."""
    said = f"store {path}: could not {action}: {exc}."
    if "locked" in str(exc) or "busy" in str(exc):
        return (
            f"{said} Another process held it for over {busy_timeout:g} s; retry, "
            "or give that process a store file of its own."
        )
    return (
        f"{said} Check that the file and its directory belong to you and are writable; "
        "if the file is damaged, move it aside and headroom starts a new store "
        "(the originals in it are lost)."
    )
