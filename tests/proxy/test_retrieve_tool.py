"""The retrieve tool's answers (a huge original capped with a note on how to read on), the
rule that keeps a retrieve result out of compression, and usage summed over the loop's hops."""

from __future__ import annotations

import json

from headroom import messages as conversation
from headroom.config import Settings
from headroom.conversation.accounts import load_ledger
from headroom.conversation.live_zone import compress_turn
from headroom.proxy.retrieve_loop import total_usage
from headroom.proxy.retrieve_tool import MAX_ANSWER_CHARS, answer
from headroom.store.memory import MemoryStore
from tests.proxy.retrieving_model import RETRIEVE
from tests.proxy.test_anthropic import grep_def


def test_a_retrieve_result_is_never_a_payload_to_compress() -> None:
    text = grep_def("json")
    for name in (RETRIEVE, "mcp__headroom__headroom_retrieve", "Bash"):
        call = {"type": "tool_use", "id": "toolu_1", "name": name, "input": {"key": "k"}}
        result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": text}
        found = conversation.read(
            [{"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]
        )
        assert len(found.payloads) == (1 if name == "Bash" else 0)
        function = {"name": name, "arguments": '{"key": "k"}'}
        found = conversation.read(
            [
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                      "function": function}]},
                {"role": "tool", "tool_call_id": "c1", "content": text},
            ]
        )  # fmt: skip
        assert len(found.payloads) == (1 if name == "Bash" else 0)


def test_a_call_is_answered_like_retrieve_from() -> None:
    clock = [1000.0]
    store = MemoryStore(ttl=60, clock=lambda: clock[0])
    key = store.put("alpha\nbeta\ngamma\ndelta")
    assert answer(store, {"key": key}).text == "alpha\nbeta\ngamma\ndelta"
    assert answer(store, {"key": key, "lines": "2-3"}).text == "beta\ngamma"
    assert answer(store, {"key": key, "grep": "^[bd]"}).text == "2:beta\n4:delta"
    assert answer(store, {"key": key, "grep": "("}).error
    assert answer(store, {"key": key, "lines": "9-2"}).error
    assert answer(store, {"lines": "1-2"}).error
    unknown = answer(store, {"key": "0123456789abcdef"})
    assert unknown.error and "unknown" in unknown.text
    clock[0] += 3600
    expired = answer(store, {"key": key})
    assert expired.error and "expired" in expired.text


def test_usage_is_summed_over_hops_nested_counts_included() -> None:
    first = {"input_tokens": 10, "cache_creation": {"ephemeral_5m_input_tokens": 3}, "tier": "a"}
    second = {"input_tokens": 5, "cache_creation": {"ephemeral_5m_input_tokens": 2}, "tier": "b"}
    total = total_usage([first, None, second])
    assert total == {
        "input_tokens": 15,
        "cache_creation": {"ephemeral_5m_input_tokens": 5},
        "tier": "b",
    }
    assert total_usage([None, None]) is None


def test_a_huge_original_is_capped_with_the_lines_to_ask_for_next() -> None:
    lines = [
        f"{n:06d} " + "x" * 92 for n in range(1, 3001)
    ]  # 100 characters a line, newline included
    store = MemoryStore()
    key = store.put("\n".join(lines))
    whole = answer(store, {"key": key}).text
    shown, note = whole.rsplit("\n", 1)
    assert len(shown) <= MAX_ANSWER_CHARS and shown.split("\n") == lines[:1000]
    assert "lines 1-1000 of 1-3000 shown" in note and 'lines="1001-3000"' in note
    part = answer(store, {"key": key, "lines": "1001-3000"}).text
    shown, note = part.rsplit("\n", 1)
    assert shown.split("\n") == lines[1000:2000] and 'lines="2001-3000"' in note
    grepped = answer(store, {"key": key, "grep": "x"}).text
    assert grepped.startswith("1:000001 ") and "matching lines shown" in grepped
    assert answer(store, {"key": key, "lines": "1-10"}).text == "\n".join(lines[:10])


def test_a_single_line_longer_than_the_cap_says_it_is_cut() -> None:
    store = MemoryStore()
    key = store.put("y" * (MAX_ANSWER_CHARS * 2))
    text = answer(store, {"key": key}).text
    assert text.startswith("y" * MAX_ANSWER_CHARS + "\n[headroom: the first 100,000 characters")


def test_a_retrieval_of_a_part_stored_on_its_own_is_counted_for_its_kind() -> None:
    store = MemoryStore()
    records = [{"id": i, "name": f"user{i}", "email": f"u{i}@example.com"} for i in range(400)]
    call = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "curl users"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": json.dumps(records)}
    messages = [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": [call]},
                {"role": "user", "content": [result]}]  # fmt: skip
    turn = compress_turn(messages, store, Settings(store="memory://"), session="parts")
    [transform] = turn.transforms
    assert transform.kind == "json" and len(transform.keys) == 2  # the whole, and a part
    assert not answer(store, {"key": transform.keys[1]}).error
    [session] = load_ledger(store).sessions()
    assert [(k.kind, k.retrieved) for k in session.kinds] == [("json", 1)]
