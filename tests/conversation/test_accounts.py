"""The ledger kept in the store (per-session notes merged on load, shared by processes) and
the token memo that counts each message of a history once."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import tokens
from headroom.conversation import accounts
from headroom.conversation.accounts import (
    TokenMemo,
    count_messages,
    load_ledger,
    reset_ledger,
    update_ledger,
)
from headroom.conversation.ledger import Ledger
from headroom.conversation.prefix import hash_message
from headroom.errors import ConfigError, StoreError
from headroom.store import MemoryStore, SQLiteStore

NOV_3_2026 = 1_793_664_000.0  # 2026-11-03 00:00 UTC
MODEL = "claude-sonnet-4-5-20250929"


def ticking(start: float = NOV_3_2026) -> Callable[[], float]:
    ticks = itertools.count()
    return lambda: start + 60.0 * next(ticks)


def turn(session: str, sent: int, forwarded: int) -> Callable[[Ledger], None]:
    def change(ledger: Ledger) -> None:
        ledger.record_turn(session, MODEL, sent=sent, forwarded=forwarded)

    return change


def test_a_sessions_turns_accumulate_across_loads_with_its_simulated_cache() -> None:
    store = MemoryStore()
    update_ledger(store, "s1", turn("s1", 60_000, 40_000), clock=ticking())
    update_ledger(store, "s1", turn("s1", 65_000, 42_000), clock=ticking())
    (stats,) = load_ledger(store).sessions()
    assert (stats.turns, stats.sent, stats.forwarded) == (2, 125_000, 82_000)
    # the second turn reads the first turn's prompt from the (simulated) cache
    assert stats.usage.read == 40_000
    assert stats.first_seen == NOV_3_2026


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 9_000), st.integers(0, 9_000)),
        max_size=12,
    )
)
def test_sessions_saved_apart_merge_into_the_ledger_kept_in_one_piece(
    turns: list[tuple[str, int, int]],
) -> None:
    store, whole = MemoryStore(), Ledger(lambda: NOV_3_2026)
    for session, sent, forwarded in turns:
        update_ledger(store, session, turn(session, sent, forwarded), clock=lambda: NOV_3_2026)
        whole.record_turn(session, MODEL, sent=sent, forwarded=forwarded)
    assert load_ledger(store).to_dict() == whole.to_dict()


WRITER = """
import sys
from headroom.conversation.accounts import update_ledger
from headroom.store import SQLiteStore

path, session = sys.argv[1], sys.argv[2]
store = SQLiteStore(path)
for n in range(30):
    update_ledger(
        store, session,
        lambda ledger: ledger.record_turn(session, "claude-sonnet-4-5", sent=2000, forwarded=1500),
    )
store.close()
"""


@pytest.mark.integration
def test_two_processes_updating_different_sessions_of_one_sqlite_store_both_show_up(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    sessions = ("claude-code-5f1c", "claude-code-9a0e")
    assert accounts._shard(sessions[0]) != accounts._shard(sessions[1])  # the documented guarantee
    SQLiteStore(path).close()  # created (and migrated) before the writers race
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), session], stderr=subprocess.PIPE)
        for session in sessions
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    store = SQLiteStore(path)
    by_id = {one.session: one for one in load_ledger(store).sessions()}
    store.close()
    assert sorted(by_id) == sorted(sessions)
    assert [by_id[s].turns for s in sessions] == [30, 30]
    assert [by_id[s].sent for s in sessions] == [60_000, 60_000]


class YieldingStore(MemoryStore):
    """A store whose reads take a moment, as SQLite's do, so threads interleave."""

    def recall(self, name: str) -> str | None:
        value = super().recall(name)
        time.sleep(0.0005)
        return value


def test_concurrent_updates_of_one_session_in_one_process_lose_no_turn() -> None:
    store = YieldingStore()

    def work() -> None:
        for _ in range(10):
            update_ledger(store, "s1", turn("s1", 10, 5))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert load_ledger(store).total().turns == 40


def test_a_change_that_records_into_another_session_is_refused_and_nothing_is_saved() -> None:
    store = MemoryStore()
    with pytest.raises(ConfigError, match=r"sessions \['s2'\].*own update_ledger call"):
        update_ledger(store, "s1", turn("s2", 100, 80))
    assert load_ledger(store).sessions() == ()


def test_no_notes_load_as_an_empty_ledger_and_a_change_recording_nothing_saves_nothing() -> None:
    store = MemoryStore()
    assert load_ledger(store).to_dict() == {"version": 1, "sessions": {}}
    update_ledger(store, "s1", lambda ledger: None)
    assert store.recall("ledger:0:session:s1") is None
    assert load_ledger(store).sessions() == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ledger:0:session:s1", "{not json"),
        ("ledger:0:session:s1", json.dumps({"version": 99, "sessions": {}})),
        ("ledger:0:session:s1", json.dumps({"version": 1, "sessions": {}})),
        ("ledger:0:shard:{shard}", json.dumps({"s1": 1})),
        ("ledger", json.dumps({"version": 1})),
    ],
)
def test_a_damaged_note_is_a_store_error_that_says_how_to_reset(name: str, value: str) -> None:
    store = MemoryStore()
    update_ledger(store, "s1", turn("s1", 100, 80))
    store.remember(name.format(shard=f"{accounts._shard('s1'):02d}"), value)
    with pytest.raises(StoreError, match=r"damaged.*headroom stats --reset"):
        load_ledger(store)
    with pytest.raises(StoreError, match=r"headroom stats --reset"):
        update_ledger(store, "s1", turn("s1", 100, 80))
    reset_ledger(store)
    assert load_ledger(store).sessions() == ()
    update_ledger(store, "s1", turn("s1", 7, 5))
    assert load_ledger(store).total().sent == 7


def test_after_a_reset_a_continuing_session_starts_from_zero() -> None:
    store = MemoryStore()
    for session in ("s1", "s2"):
        update_ledger(store, session, turn(session, 1_000, 800))
    reset_ledger(store)
    assert load_ledger(store).sessions() == ()
    update_ledger(store, "s1", turn("s1", 30, 20))
    reset_ledger(store)
    reset_ledger(store)  # each reset starts an epoch of its own
    update_ledger(store, "s2", turn("s2", 50, 40))
    (stats,) = load_ledger(store).sessions()
    assert (stats.session, stats.turns, stats.sent) == ("s2", 1, 50)


def test_a_session_lost_from_its_shard_is_listed_again_by_its_next_update() -> None:
    store = MemoryStore()
    update_ledger(store, "s1", turn("s1", 1_000, 800))
    shard = f"ledger:0:shard:{accounts._shard('s1'):02d}"
    store.remember(shard, "[]")  # what a racing writer of the same shard can leave behind
    assert load_ledger(store).sessions() == ()
    update_ledger(store, "s1", turn("s1", 1_000, 800))
    assert [(one.session, one.turns) for one in load_ledger(store).sessions()] == [("s1", 2)]


def test_a_session_whose_note_expired_is_left_out() -> None:
    now = [NOV_3_2026]
    store = MemoryStore(ttl=3_600, clock=lambda: now[0])
    update_ledger(store, "old", turn("old", 1_000, 800))
    now[0] += 3_000
    update_ledger(store, "new", turn("new", 1_000, 800))
    now[0] += 1_000  # "old" is 4000 s unused, beyond the ttl
    assert [one.session for one in load_ledger(store).sessions()] == ["new"]


def counting(calls: list[str], value: int) -> Callable[[str], Callable[[], int]]:
    def counter_for(key: str) -> Callable[[], int]:
        def counter() -> int:
            calls.append(key)
            return value

        return counter

    return counter_for


def test_the_memo_counts_each_key_once() -> None:
    memo, calls = TokenMemo(), []
    counter_for = counting(calls, 42)
    for _ in range(3):
        assert [memo.count(key, counter_for(key)) for key in ("m0", "m1", "m2")] == [42] * 3
    assert calls == ["m0", "m1", "m2"]


def test_the_memo_drops_the_least_recently_used_beyond_its_bound() -> None:
    memo, calls = TokenMemo(max_entries=2), []
    counter_for = counting(calls, 1)
    for key in ("a", "b", "a", "c", "a", "b"):
        memo.count(key, counter_for(key))
    # "b" was the least recently used when "c" came in; "a" stayed as it was used again
    assert calls == ["a", "b", "c", "b"]
    assert len(memo) == 2


@pytest.mark.parametrize("bound", [0, -1, 2.5, True])
def test_the_memo_refuses_a_bound_that_is_not_a_positive_whole_number(bound: Any) -> None:
    with pytest.raises(ConfigError, match="max_entries"):
        TokenMemo(max_entries=bound)


SYSTEM_READ = "     1\timport json\n     2\t\n     3\tdef load(path):\n     4\t    return json.load(open(path))\n"


def history(turns: int) -> list[dict[str, Any]]:
    """A Claude Code history: a question, then tool calls and results; the newest result
    carries the moving cache_control breakpoint."""
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Why does load() fail on big files?"}],
        }
    ]
    for n in range(turns):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": f"toolu_01{n:04d}",
                        "name": "Read",
                        "input": {"file_path": f"/repo/app/mod{n}.py"},
                    }
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": f"toolu_01{n:04d}",
                        "content": SYSTEM_READ,
                    }
                ],
            }
        )
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return messages


def test_counting_a_growing_history_counts_only_its_new_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted: list[str] = []
    real_count = tokens.count
    monkeypatch.setattr(
        tokens, "count", lambda text, model=None: counted.append(text) or real_count(text, model)
    )
    memo = TokenMemo()
    for turns in (1, 2, 3):
        messages = history(turns)
        hashes = [hash_message(message).whole for message in messages]
        total = count_messages(messages, hashes, MODEL, memo)
        expected = sum(
            real_count(json.dumps(accounts.without_cache_control(m), ensure_ascii=False), MODEL)
            for m in messages
        )
        assert total == expected
    # 3 + 2 + 2 messages are new over the three turns; the moved breakpoint changes no hash
    assert len(counted) == 7


def test_counts_are_kept_apart_per_encoding_and_hashes_must_match_the_messages() -> None:
    memo, messages = TokenMemo(), history(1)
    hashes = [hash_message(message).whole for message in messages]
    count_messages(messages, hashes, "gpt-4-turbo", memo)
    count_messages(messages, hashes, MODEL, memo)
    assert len(memo) == 2 * len(messages)
    with pytest.raises(ConfigError, match="3 messages but 2 hashes"):
        count_messages(messages, hashes[:2], MODEL, memo)
