"""`headroom stats` end to end, in subprocesses, over the ledger kept in the home's store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from headroom.conversation.accounts import load_ledger, update_ledger
from headroom.conversation.ledger import Ledger
from headroom.store import SQLiteStore

pytestmark = pytest.mark.integration

NOV_3_2026 = 1_793_664_000.0  # 2026-11-03 00:00 UTC
SESSION = "4f1d2c0e-claude-code"


def stats(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEADROOM_HOME": str(home)}
    env.pop("HEADROOM_STORE", None)
    return subprocess.run(
        [sys.executable, "-m", "headroom.cli", "stats", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def home_store(home: Path) -> SQLiteStore:
    home.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(home / "store.db")


def record_two_turns(home: Path) -> None:
    store = home_store(home)

    def change(ledger: Ledger) -> None:
        ledger.record_turn(SESSION, "claude-sonnet-4-5", sent=60_000, forwarded=40_000)
        ledger.record_compression(SESSION, "code", 20_000, 2_000)

    for _ in range(2):
        update_ledger(store, SESSION, change, clock=lambda: NOV_3_2026)
    store.close()


def test_with_no_sessions_it_says_how_sessions_get_recorded(headroom_home: Path) -> None:
    done = stats(home=headroom_home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert "no sessions recorded yet" in done.stdout


def test_it_prints_the_recorded_sessions_and_their_total(headroom_home: Path) -> None:
    record_two_turns(headroom_home)
    done = stats(home=headroom_home)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "2026-11-03 00:00" in rows[SESSION] and "120,000" in rows[SESSION]
    assert "80,000" in rows["total"]
    assert rows["code"].split()[1:4] == ["2", "40,000", "4,000"]


def test_json_prints_the_merged_ledger(headroom_home: Path) -> None:
    record_two_turns(headroom_home)
    done = stats("--json", home=headroom_home)
    assert done.returncode == 0, done.stderr
    store = home_store(headroom_home)
    assert json.loads(done.stdout) == load_ledger(store).to_dict()
    store.close()
    assert json.loads(done.stdout)["sessions"][SESSION]["turns"] == 2


def test_reset_says_what_it_cleared_and_leaves_no_session(headroom_home: Path) -> None:
    record_two_turns(headroom_home)
    done = stats("--reset", home=headroom_home)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "headroom ledger reset: cleared 1 session (2 turns)\n"
    assert "no sessions recorded yet" in stats(home=headroom_home).stdout


def test_a_damaged_ledger_is_one_error_line_naming_the_reset(headroom_home: Path) -> None:
    record_two_turns(headroom_home)
    store = home_store(headroom_home)
    store.remember(f"ledger:0:session:{SESSION}", '{"version": 1, "sessions": ')
    store.close()
    done = stats(home=headroom_home)
    assert done.returncode == 1
    assert done.stderr.startswith("headroom: error: the ledger note")
    assert "headroom stats --reset" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    reset = stats("--reset", home=headroom_home)
    assert reset.stdout == "headroom ledger reset: cleared a damaged ledger\n"
    assert stats(home=headroom_home).returncode == 0


def test_json_and_reset_together_are_a_usage_error(headroom_home: Path) -> None:
    done = stats("--json", "--reset", home=headroom_home)
    assert done.returncode == 2
    assert "do not go together" in done.stderr
