"""The fake upstream's prompt cache reports reads, writes and the uncached tail as the API
does: by breakpoint, with markers set aside, a 20-block look-back, a minimum length and TTLs."""

from __future__ import annotations

from typing import Any

from tests.agents.prompt_cache import PromptCache, total_tokens

MARK = {"type": "ephemeral"}
SYSTEM: list[dict[str, Any]] = [
    {"type": "text", "text": "You are a careful agent. " * 400, "cache_control": MARK}
]


def user(text: str, marked: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if marked:
        block["cache_control"] = MARK
    return {"role": "user", "content": [block]}


def body(*messages: dict[str, Any], system: list[dict[str, Any]] = SYSTEM) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-6", "system": system, "messages": list(messages)}


def test_first_request_writes_up_to_its_last_breakpoint_and_bills_the_tail_as_input() -> None:
    request = body(user("first question", marked=True), user("not cached"))
    usage = PromptCache().usage(request)
    tail = total_tokens(body(user("first question"), user("not cached"))) - total_tokens(
        body(user("first question"))
    )
    assert usage["cache_read_input_tokens"] == 0
    assert usage["input_tokens"] == tail
    assert usage["cache_creation_input_tokens"] == total_tokens(request) - tail
    assert (
        usage["cache_creation"]["ephemeral_5m_input_tokens"]
        == (usage["cache_creation_input_tokens"])
    )


def test_next_turn_reads_the_previous_prefix_with_its_marker_moved() -> None:
    cache = PromptCache()
    first = body(user("question", marked=True))
    cache.usage(first)
    later = body(user("question"), {"role": "assistant", "content": "answer"}, user("more", True))
    usage = cache.usage(later)
    assert usage["cache_read_input_tokens"] == total_tokens(first)
    assert usage["cache_creation_input_tokens"] == total_tokens(later) - total_tokens(first)
    assert usage["input_tokens"] == 0


def test_a_changed_byte_before_the_breakpoint_misses() -> None:
    cache = PromptCache()
    cache.usage(body(user("question", marked=True)))
    changed = [{**SYSTEM[0], "text": SYSTEM[0]["text"] + "!"}]
    usage = cache.usage(body(user("question", marked=True), system=changed))
    assert usage["cache_read_input_tokens"] == 0


def test_lookup_reaches_back_twenty_blocks_and_no_further() -> None:
    notes = [user(f"note {i}") for i in range(20)]
    start = body(user("start", marked=True))
    for between, read in ((notes[:19], total_tokens(start)), (notes, total_tokens(body()))):
        cache = PromptCache()
        cache.usage(start)
        later = body(user("start"), *between, user("question", marked=True))
        # Beyond the look-back only the system prompt's own breakpoint is found.
        assert cache.usage(later)["cache_read_input_tokens"] == read


def test_a_prefix_shorter_than_the_minimum_is_not_cached() -> None:
    cache = PromptCache()
    short = body(user("hi", marked=True), system=[{"type": "text", "text": "Be brief."}])
    assert cache.usage(short)["cache_creation_input_tokens"] == 0
    assert cache.usage(short)["cache_read_input_tokens"] == 0


def test_an_entry_expires_after_its_ttl_unless_read() -> None:
    now = [0.0]
    cache = PromptCache(clock=lambda: now[0])
    request = body(user("question", marked=True))
    cache.usage(request)
    now[0] = 299.0
    assert cache.usage(request)["cache_read_input_tokens"] == total_tokens(request)
    now[0] = 299.0 + 301.0
    assert cache.usage(request)["cache_read_input_tokens"] == 0
