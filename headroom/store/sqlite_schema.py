"""The SQLite store's schema: ordered, named migrations, each run once per file and recorded
in `_migrations`, and the triggers that keep running totals of held originals and notes (so
the size cap is checked without a scan)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from headroom.errors import StoreError

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []
"""Every schema step, in the order it runs; each runs once per file."""


def migration(step: Migration) -> Migration:
    """Appends `step` to the migrations under its function name."""
    MIGRATIONS.append((step.__name__, step))
    return step


@migration
def m001_originals(conn: sqlite3.Connection) -> None:
    """One row per key: the zstd body while held, a tombstone (NULL body) once expired."""
    conn.execute(
        "CREATE TABLE originals (key TEXT PRIMARY KEY, digest TEXT NOT NULL, body BLOB, "
        "original_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL, "
        "last_used REAL NOT NULL, expired_at REAL)"
    )
    conn.execute(
        "CREATE INDEX originals_held_by_use ON originals (last_used) WHERE expired_at IS NULL"
    )
    conn.execute(
        "CREATE INDEX originals_expired_by_time ON originals (expired_at) "
        "WHERE expired_at IS NOT NULL"
    )


@migration
def m002_usage(conn: sqlite3.Connection) -> None:
    """A one-row table of held keys and bytes, kept current by triggers on `originals`."""
    conn.execute(
        "CREATE TABLE usage (id INTEGER PRIMARY KEY CHECK (id = 1), keys INTEGER NOT NULL, "
        "original_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL)"
    )
    conn.execute(
        "INSERT INTO usage SELECT 1, COUNT(*), COALESCE(SUM(original_bytes), 0), "
        "COALESCE(SUM(stored_bytes), 0) FROM originals WHERE expired_at IS NULL"
    )
    for name, event, rows in (
        ("originals_inserted", "INSERT", ("+NEW",)),
        ("originals_deleted", "DELETE", ("-OLD",)),
        (
            "originals_updated",
            "UPDATE OF expired_at, original_bytes, stored_bytes",
            ("-OLD", "+NEW"),
        ),
    ):
        conn.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON originals "
            f"BEGIN UPDATE usage SET {_usage_change(rows)}; END"
        )


@migration
def m003_notes(conn: sqlite3.Connection) -> None:
    """Named notes: small values the conversation layer keeps, expiring like originals."""
    conn.execute(
        "CREATE TABLE notes (name TEXT PRIMARY KEY, value BLOB NOT NULL, last_used REAL NOT NULL)"
    )


@migration
def m004_note_sizes(conn: sqlite3.Connection) -> None:
    """Notes count against the size cap: each keeps its stored size, and `usage` their total."""
    conn.execute("ALTER TABLE notes ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE notes SET stored_bytes = length(value)")
    conn.execute("CREATE INDEX notes_by_use ON notes (last_used)")
    conn.execute("ALTER TABLE usage ADD COLUMN note_bytes INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE usage SET note_bytes = (SELECT COALESCE(SUM(stored_bytes), 0) FROM notes)")
    for name, event, change in (
        ("notes_inserted", "INSERT", "+ NEW.stored_bytes"),
        ("notes_deleted", "DELETE", "- OLD.stored_bytes"),
        ("notes_updated", "UPDATE OF stored_bytes", "- OLD.stored_bytes + NEW.stored_bytes"),
    ):
        conn.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON notes "
            f"BEGIN UPDATE usage SET note_bytes = note_bytes {change}; END"
        )


def _usage_change(rows: tuple[str, ...]) -> str:
    """The SET clause that adds (+NEW) or subtracts (-OLD) a row's sizes while it is held."""
    clauses = []
    for column in ("keys", "original_bytes", "stored_bytes"):
        terms = []
        for row in rows:
            sign, name = row[0], row[1:]
            size = "1" if column == "keys" else f"{name}.{column}"
            terms.append(f"{sign} CASE WHEN {name}.expired_at IS NULL THEN {size} ELSE 0 END")
        clauses.append(f"{column} = {column} {' '.join(terms)}")
    return ", ".join(clauses)


def migrate(conn: sqlite3.Connection, now: float) -> list[str]:
    """Runs the migrations this file has not had, in one transaction; returns their names."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        applied = {name for (name,) in conn.execute("SELECT name FROM _migrations")}
        unknown = sorted(applied - {name for name, _ in MIGRATIONS})
        if unknown:
            raise StoreError(
                f"the store was written by a newer headroom (migrations {', '.join(unknown)}); "
                "upgrade headroom, or point it at another store file."
            )
        ran = []
        for name, step in MIGRATIONS:
            if name not in applied:
                step(conn)
                conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, now))
                ran.append(name)
    except BaseException:
        conn.rollback()
        raise
    conn.execute("COMMIT")
    return ran
