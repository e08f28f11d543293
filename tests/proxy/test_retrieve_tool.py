"""The retrieve tool's answers, the rule that keeps a retrieve result out of compression, and
usage summed over the loop's hops."""

from __future__ import annotations

from headroom import messages as conversation
from headroom.proxy.retrieve_loop import total_usage
from headroom.proxy.retrieve_tool import answer
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
