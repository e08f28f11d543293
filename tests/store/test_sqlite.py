"""What the SQLite store does beyond the shared contract: a private WAL file, migrations,
collisions, damage, errors that say what to do, and several processes on one file."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
import zstandard

import headroom
from headroom.errors import ExpiredKeyError, StoreError
from headroom.store import SQLiteStore
from headroom.store.base import DEFAULT_TTL, pack
from headroom.store.sqlite_schema import MIGRATIONS, migrate


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".headroom" / "store.db"


@pytest.fixture
def store(path: Path, clock: Callable[[], float]) -> Iterator[SQLiteStore]:
    store = SQLiteStore(path, clock=clock)
    yield store
    store.close()


def raw(path: Path) -> closing[sqlite3.Connection]:
    """A plain connection to the store's file, as another tool would open it."""
    return closing(sqlite3.connect(path, isolation_level=None))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_is_private_and_its_new_directory_too(store: SQLiteStore, path: Path) -> None:
    store.put("a secret")
    assert mode(path) == 0o600
    assert mode(path.with_name("store.db-wal")) == 0o600
    assert mode(path.parent) == 0o700


def test_the_file_runs_in_wal_mode(store: SQLiteStore, path: Path) -> None:
    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_every_migration_is_recorded_in_order(store: SQLiteStore, path: Path) -> None:
    with raw(path) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
        assert (
            names
            == [name for name, _ in MIGRATIONS]
            == ["m001_originals", "m002_usage", "m003_notes", "m004_note_sizes"]
        )
        assert migrate(conn, 0.0) == []


def test_a_file_from_a_newer_headroom_is_refused(store: SQLiteStore, path: Path) -> None:
    store.close()
    with raw(path) as conn:
        conn.execute("INSERT INTO _migrations VALUES ('m999_future', 0)")
    with pytest.raises(StoreError, match=r"newer headroom \(migrations m999_future\); upgrade"):
        SQLiteStore(path)


def test_originals_outlive_the_process_that_stored_them(
    store: SQLiteStore, path: Path, clock: Callable[[], float]
) -> None:
    key = store.put("kept on disk")
    store.close()
    reopened = SQLiteStore(path, clock=clock)
    try:
        assert reopened.get(key) == "kept on disk"
    finally:
        reopened.close()


def test_stores_on_one_file_see_each_others_expiry(
    store: SQLiteStore, path: Path, clock: Callable[[], float], advance: Callable[[float], None]
) -> None:
    other = SQLiteStore(path, clock=clock)
    try:
        key = store.put("expires for both")
        advance(DEFAULT_TTL)
        with pytest.raises(ExpiredKeyError):
            other.get(key)
        with pytest.raises(ExpiredKeyError):
            store.get(key)
    finally:
        other.close()


def forge(path: Path, key: str, *, held: bool) -> None:
    """Writes a row under `key` for another original whose digest shares that prefix."""
    digest = key + "0" * (64 - len(key))
    body = pack(b"another original") if held else None
    expired_at = None if held else 0.0
    with raw(path) as conn:
        conn.execute(
            "INSERT INTO originals VALUES (?, ?, ?, 16, ?, 1e12, ?)",
            (key, digest, body, len(body or b""), expired_at),
        )


@pytest.mark.parametrize("held", [True, False], ids=["held", "tombstone"])
def test_a_collision_gives_the_newcomer_a_longer_key(
    store: SQLiteStore, path: Path, held: bool
) -> None:
    digest = hashlib.sha256(b"newcomer").hexdigest()
    forge(path, digest[:16], held=held)
    key = store.put("newcomer")
    assert key == digest[:20]
    assert store.put("newcomer") == key
    assert store.get(key) == "newcomer"
    if held:
        assert store.get(digest[:16]) == "another original"
    else:
        with pytest.raises(ExpiredKeyError):
            store.get(digest[:16])


def test_verify_reports_a_key_its_content_does_not_hash_to(store: SQLiteStore, path: Path) -> None:
    good = store.put("good")
    forged = hashlib.sha256(b"absent").hexdigest()[:16]
    forge(path, forged, held=True)
    assert store.verify() == [forged]
    assert store.get(good) == "good"


def test_a_damaged_body_is_reported_by_verify_and_get(store: SQLiteStore, path: Path) -> None:
    key = store.put("soon damaged")
    with raw(path) as conn:
        conn.execute("UPDATE originals SET body = x'00ff' WHERE key = ?", (key,))
    assert store.verify() == [key]
    with pytest.raises(StoreError, match=rf"{key} in {path}.*verify\(\)") as raised:
        store.get(key)
    assert isinstance(raised.value.__cause__, zstandard.ZstdError)


def test_a_file_that_is_not_a_database_is_a_store_error(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b"not a database " * 100)
    with pytest.raises(StoreError, match=rf"store {path}: could not open.*move it aside") as raised:
        SQLiteStore(path)
    assert isinstance(raised.value.__cause__, sqlite3.DatabaseError)


def test_a_path_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "a file").write_text("")
    with pytest.raises(StoreError, match="choose another path") as raised:
        SQLiteStore(tmp_path / "a file" / "store.db")
    assert isinstance(raised.value.__cause__, OSError)


def test_a_file_held_too_long_by_another_writer_is_a_store_error(path: Path) -> None:
    waiting = SQLiteStore(path, busy_timeout=0.05)
    try:
        with raw(path) as conn:
            conn.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="Another process held it") as raised:
                waiting.put("blocked")
            conn.execute("ROLLBACK")
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert waiting.get(waiting.put("unblocked")) == "unblocked"
    finally:
        waiting.close()


def test_purge_gives_freed_pages_back(store: SQLiteStore, path: Path) -> None:
    store.put(os.urandom(2_000_000).hex())
    store.close()
    full = path.stat().st_size
    reopened = SQLiteStore(path)
    try:
        assert reopened.purge(everything=True) == 1
        with raw(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert path.stat().st_size < full // 10
    finally:
        reopened.close()


WRITER = """
import sys
from headroom.store import SQLiteStore

store = SQLiteStore(sys.argv[1])
for index in range(200):
    for text in (f"{sys.argv[2]} {index}", f"shared {index}"):
        assert store.get(store.put(text)) == text, text
store.close()
"""


@pytest.mark.integration
def test_two_processes_write_and_read_one_file_at_once(path: Path) -> None:
    root = Path(headroom.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors
    store = SQLiteStore(path)
    try:
        assert store.stats().keys == 3 * 200
        assert store.verify() == []
        assert store.get(store.put("first 199")) == "first 199"
    finally:
        store.close()
