"""The library call end to end: real payloads in a conversation, a real SQLite store."""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import headroom
from headroom import compress, markers, retrieve
from headroom.api import grep_lines
from headroom.errors import ConfigError, InvalidMessagesError


def conversation(
    payload: str, command: str = "cat", question: str = "What is in it?"
) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": command}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": payload}]},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pytest_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real pytest run's output: many passing tests and one failure."""
    folder = tmp_path_factory.mktemp("suite")
    cases = "\n".join(f"def test_ok_{i}():\n    assert {i} == {i}\n" for i in range(300))
    (folder / "test_suite.py").write_text(
        cases + "\ndef test_broken():\n    assert 1 == 2, 'broken-1234'\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(folder)],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    return run.stdout


def test_a_source_file_is_outlined_and_its_original_retrievable() -> None:
    source = Path(argparse.__file__).read_text()
    result = compress(conversation(source, "cat argparse.py"), model="claude-sonnet-4-5")
    [transform] = result.transforms
    assert transform.skipped is None and transform.kind == "code"
    assert result.tokens_after < result.tokens_before * 0.6
    assert retrieve(transform.keys[0]) == source
    assert "class ArgumentParser" in result.messages[2]["content"][0]["content"]


def test_a_pytest_log_keeps_its_failure_and_summary(pytest_log: str) -> None:
    result = compress(conversation(pytest_log, "pytest -v"))
    output = result.messages[2]["content"][0]["content"]
    assert result.tokens_saved > 0
    assert "broken-1234" in output
    summary = [
        line for line in pytest_log.splitlines() if " failed, " in line or "1 failed" in line
    ][-1]
    assert summary in output


def test_ids_roles_and_order_are_kept_and_the_input_is_not_mutated(pytest_log: str) -> None:
    messages = conversation(pytest_log)
    snapshot = copy.deepcopy(messages)
    result = compress(messages)
    assert messages == snapshot
    assert [m["role"] for m in result.messages] == [m["role"] for m in messages]
    assert result.messages[2]["content"][0]["tool_use_id"] == "toolu_1"
    assert result.messages[1] == messages[1]


def test_small_payloads_are_left_alone() -> None:
    result = compress(conversation("just a few words"))
    assert result.transforms[0].skipped == "under min_tokens (200)"
    assert result.messages[2]["content"][0]["content"] == "just a few words"
    assert result.compression_ratio == 1.0


def test_compressing_twice_gives_the_same_bytes(pytest_log: str) -> None:
    first = compress(conversation(pytest_log)).messages
    second = compress(conversation(pytest_log)).messages
    assert first == second


def test_an_already_compressed_payload_is_not_compressed_again(pytest_log: str) -> None:
    once = compress(conversation(pytest_log)).messages[2]["content"][0]["content"]
    again = compress(conversation(once))
    assert again.transforms[0].skipped == "already compressed"


def test_retrieve_slices_by_lines_and_grep(pytest_log: str) -> None:
    result = compress(conversation(pytest_log))
    key = result.transforms[0].keys[0]
    lines = pytest_log.split("\n")
    assert retrieve(key, lines="3-5") == "\n".join(lines[2:5])
    grepped = retrieve(key, grep="broken-1234")
    assert grepped is not None and all("broken-1234" in line for line in grepped.splitlines())
    assert grepped.split(":", 1)[0].isdigit()


def test_grep_within_a_slice_numbers_lines_as_in_the_original(pytest_log: str) -> None:
    key = compress(conversation(pytest_log)).transforms[0].keys[0]
    lines = pytest_log.split("\n")
    hits = [n for n, line in enumerate(lines, 1) if "broken-1234" in line]
    assert hits, "the fixture log names broken-1234"
    spec = f"{hits[-1] - 2}-{hits[-1] + 2}"
    grepped = retrieve(key, lines=spec, grep="broken-1234")
    assert grepped is not None
    assert grepped.splitlines()[-1] == f"{hits[-1]}:{lines[hits[-1] - 1]}"


def test_every_marker_range_retrieves_the_lines_it_stands_for(pytest_log: str) -> None:
    result = compress(conversation(pytest_log))
    output = result.messages[2]["content"][0]["content"]
    key = markers.header_key(output)
    assert key is not None
    original = pytest_log.split("\n")
    for elision in markers.parse(output):
        if elision.first_line is None or elision.last_line is None:
            continue
        part = retrieve(key, lines=f"{elision.first_line}-{elision.last_line}")
        assert part == "\n".join(original[elision.first_line - 1 : elision.last_line])


def test_unknown_keys_give_none() -> None:
    assert retrieve("0000000000000000") is None


def test_openai_shape_is_compressed_in_place(pytest_log: str) -> None:
    messages = [
        {"role": "user", "content": "Why does it fail?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "shell", "arguments": '{"command": "pytest"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": pytest_log},
    ]  # fmt: skip
    result = compress(messages, model="gpt-4o")
    assert result.messages[2]["tool_call_id"] == "call_1"
    assert len(result.messages[2]["content"]) < len(pytest_log)


def test_bad_messages_raise_a_headroom_error() -> None:
    with pytest.raises(InvalidMessagesError):
        compress([{"role": "robot", "content": "hi"}])


def test_the_public_surface_is_pinned() -> None:
    assert sorted(headroom.__all__) == [
        "CompressResult", "ConfigError", "ExpiredKeyError", "HeadroomError",
        "InvalidMessagesError", "Settings", "StoreError", "Transform", "compress", "retrieve",
    ]  # fmt: skip


def test_a_retrieval_is_counted_against_the_session_and_kind(pytest_log: str) -> None:
    from headroom.api import store_for
    from headroom.config import Settings
    from headroom.conversation.accounts import load_ledger

    result = compress(conversation(pytest_log, "pytest -v"), session="counted")
    retrieve(result.transforms[0].keys[0])
    [session] = load_ledger(store_for(Settings.from_env())).sessions()
    [log] = [k for k in session.kinds if k.kind == "log"]
    assert (session.session, log.retrieved) == ("counted", 1)


def test_a_damaged_store_note_fails_open(pytest_log: str) -> None:
    from headroom.api import store_for
    from headroom.config import Settings

    store_for(Settings.from_env()).remember("prefix:damaged", "{not json")
    result = compress(conversation(pytest_log), session="damaged")
    assert result.messages[2]["content"][0]["content"] == pytest_log
    assert result.transforms[0].skipped == "store unavailable"
    assert "damaged" in (result.transforms[0].error or "")


def test_retrieve_survives_a_damaged_ledger_and_rejects_a_reversed_range(pytest_log: str) -> None:
    from headroom.api import store_for
    from headroom.config import Settings
    from headroom.errors import ConfigError

    result = compress(conversation(pytest_log), session="ledger")
    store_for(Settings.from_env()).remember("ledger", "{damaged")
    key = result.transforms[0].keys[0]
    assert retrieve(key) == pytest_log
    with pytest.raises(ConfigError, match="ends before it starts"):
        retrieve(key, lines="30-10")


def test_token_counts_are_of_the_messages_as_they_were_passed(pytest_log: str) -> None:
    messages = conversation(pytest_log)
    result = compress(messages)
    before = compress(conversation(pytest_log)).tokens_before
    messages.append({"role": "user", "content": "another question " * 100})
    assert result.tokens_before == before


def test_conversations_with_the_same_opening_do_not_replay_each_others_decisions() -> None:
    """Without a session both are named by their first user message; the read at the same
    place, with the same tool id and content, must still follow each one's own history."""
    source = Path(argparse.__file__).read_text()
    numbered = "\n".join(f"{n:>6}→{line}" for n, line in enumerate(source.split("\n"), 1))

    def history(first_call: dict[str, Any], first_result: str) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": "Fix the parser"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", **first_call}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": first_result}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t2", "name": "Read",
                "input": {"file_path": "/src/argparse.py"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t2", "content": numbered}]},
        ]  # fmt: skip

    looked = history({"name": "Bash", "input": {"command": "ls /src"}}, "argparse.py")
    edit = {"file_path": "/src/argparse.py", "old_string": "a", "new_string": "b"}
    edited = history({"name": "Edit", "input": edit}, "ok")
    assert len(compress(looked).messages[4]["content"][0]["content"]) < len(numbered)
    result = compress(edited)
    assert result.messages[4]["content"][0]["content"] == numbered
    assert result.transforms[-1].skipped == "read of a file the session edited"


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w+\s?)*$", r"(a|b(c*))+", r"x(?=(a+)+)"])
def test_a_grep_that_repeats_a_repeat_is_refused_before_it_can_hang(pattern: str) -> None:
    with pytest.raises(ConfigError, match="repeats a repeat"):
        grep_lines("a" * 40 + "!", pattern)


@pytest.mark.parametrize("pattern", [r"ERROR|FAIL", r"(ab)+", r"\d+:\d+", r"(?:(?:a+))", r"a{2,}b"])
def test_ordinary_grep_patterns_are_accepted(pattern: str) -> None:
    assert grep_lines("ab\nERROR 12:30\naab", pattern) is not None
