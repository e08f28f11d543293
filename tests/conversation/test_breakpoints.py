"""Cache breakpoints: the canonical form without markers, counting, and placement."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.conversation.breakpoints import (
    count_breakpoints,
    place_breakpoints,
    strip_cache_control,
)
from headroom.errors import ConfigError, InvalidMessagesError

EPHEMERAL = {"type": "ephemeral"}
IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."
INSTRUCTIONS = (
    "You are an interactive CLI tool that helps users with software engineering tasks. "
    "Use the instructions below and the tools available to you to assist the user. "
    "IMPORTANT: Assist with defensive security tasks only. When you reference code, cite "
    "file_path:line_number so the user can navigate to it. Prefer editing existing files. "
) * 20
LISTING = "\n".join(f"src/headroom/module_{i}.py" for i in range(300))


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def _tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": sorted(properties),
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


TOOLS = [
    _tool("Bash", "Executes a bash command.", {"command": {"type": "string"}}),
    _tool("Read", "Reads a file.", {"file_path": {"type": "string"}}),
    _tool("Edit", "Replaces a string in a file.", {"file_path": {}, "old_string": {}}),
]


def claude_code_body() -> dict[str, Any]:
    """A request as Claude Code sends it: two marked system blocks, the newest tool result
    marked, thinking with its signature in the assistant turn."""
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "system": [
            {**text(IDENTITY), "cache_control": EPHEMERAL},
            {**text(INSTRUCTIONS), "cache_control": EPHEMERAL},
        ],
        "tools": copy.deepcopy(TOOLS),
        "messages": [
            {
                "role": "user",
                "content": [
                    text("<system-reminder>cwd: /repo</system-reminder>"),
                    text("List the modules and fix the failing test."),
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "List first.", "signature": "EqQBCkYIBxgC"},
                    text("Listing the modules."),
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "Bash",
                        "input": {"command": "ls src/headroom"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": [text(LISTING)],
                        "cache_control": EPHEMERAL,
                    }
                ],
            },
        ],
    }


def marked(body: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Where the markers are: (section, index, block)."""
    places = [("tools", i, -1) for i, t in enumerate(body.get("tools", [])) if "cache_control" in t]
    system = body.get("system")
    places += [
        ("system", i, -1)
        for i, b in enumerate(system if isinstance(system, list) else [])
        if "cache_control" in b
    ]
    for m, message in enumerate(body["messages"]):
        content = message["content"]
        places += [
            ("messages", m, b)
            for b, block in enumerate(content if isinstance(content, list) else [])
            if "cache_control" in block
        ]
    return places


def tool_round(n: int) -> list[dict[str, Any]]:
    """An assistant turn with n parallel tool calls and the user turn with their results."""
    calls = [
        {"type": "tool_use", "id": f"toolu_{i}", "name": "Read", "input": {"file_path": f"f{i}"}}
        for i in range(n)
    ]
    results = [
        {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": f"line {i}\n" * 5}
        for i in range(n)
    ]
    return [{"role": "assistant", "content": calls}, {"role": "user", "content": results}]


# strip_cache_control and count_breakpoints


def test_strip_removes_every_marker_including_inside_tool_results() -> None:
    body = claude_code_body()
    assert count_breakpoints(body) == 3  # two on the system prompt, one on the newest result
    body["tools"][-1]["cache_control"] = EPHEMERAL
    body["messages"][2]["content"][0]["content"][0]["cache_control"] = EPHEMERAL
    assert count_breakpoints(body) == 5
    stripped = strip_cache_control(body)
    assert count_breakpoints(stripped) == 0
    assert "cache_control" not in json.dumps(stripped)


def test_strip_removes_only_markers() -> None:
    body = claude_code_body()
    body["messages"][1]["content"][2]["input"] = {"cache_control": "keep", "command": "ls"}
    stripped = strip_cache_control(body)
    assert stripped["messages"][1]["content"][2]["input"]["cache_control"] == "keep"
    expected = copy.deepcopy(body)
    del expected["system"][0]["cache_control"], expected["system"][1]["cache_control"]
    del expected["messages"][2]["content"][0]["cache_control"]
    assert stripped == expected


def test_strip_returns_a_deep_copy_and_leaves_the_input_alone() -> None:
    body = claude_code_body()
    stripped = strip_cache_control(body)
    stripped["messages"][0]["content"][0]["text"] = "changed"
    assert body == claude_code_body()


def test_strip_makes_moved_markers_compare_equal() -> None:
    turn_a, turn_b = claude_code_body(), claude_code_body()
    del turn_b["messages"][2]["content"][0]["cache_control"]
    turn_b["messages"][1]["content"][2]["cache_control"] = EPHEMERAL
    assert json.dumps(turn_a) != json.dumps(turn_b)
    assert json.dumps(strip_cache_control(turn_a)) == json.dumps(strip_cache_control(turn_b))


# place_breakpoints: the client's own markers


def test_client_breakpoints_are_left_alone_byte_for_byte() -> None:
    body = claude_code_body()
    before = json.dumps(body)
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    assert result is body
    assert json.dumps(result) == before


# place_breakpoints: placement


def test_marks_tools_system_frozen_end_and_newest_message() -> None:
    body = strip_cache_control(claude_code_body())
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    assert marked(result) == [
        ("tools", 2, -1),
        ("system", 1, -1),
        ("messages", 1, 2),
        ("messages", 2, 0),
    ]
    assert result["tools"][2]["cache_control"] == {"type": "ephemeral"}


def test_only_the_markers_differ_and_the_input_is_not_mutated() -> None:
    body = strip_cache_control(claude_code_body())
    before = copy.deepcopy(body)
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    assert body == before
    assert strip_cache_control(result) == body
    assert result["messages"][0] is body["messages"][0]  # untouched parts are shared


def test_no_newest_marker_when_every_message_is_frozen() -> None:
    body = strip_cache_control(claude_code_body())
    result = place_breakpoints(body, frozen_messages=3, min_tokens=0)
    assert marked(result) == [("tools", 2, -1), ("system", 1, -1), ("messages", 2, 0)]


def test_an_assistant_prefill_is_not_marked() -> None:
    body = strip_cache_control(claude_code_body())
    body["messages"].append({"role": "assistant", "content": [text("{")]})
    result = place_breakpoints(body, frozen_messages=3, min_tokens=0)
    assert ("messages", 3, 0) not in marked(result)


def test_first_turn_marks_the_newest_message_without_a_frozen_prefix() -> None:
    body = strip_cache_control(claude_code_body())
    result = place_breakpoints(body, frozen_messages=0, min_tokens=0)
    assert marked(result) == [("tools", 2, -1), ("system", 1, -1), ("messages", 2, 0)]


def test_a_string_system_becomes_one_marked_text_block() -> None:
    body = strip_cache_control(claude_code_body())
    body["system"] = INSTRUCTIONS
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    assert result["system"] == [{"type": "text", "text": INSTRUCTIONS, "cache_control": EPHEMERAL}]


def test_string_message_content_is_never_marked() -> None:
    body = strip_cache_control(claude_code_body())
    body["messages"].append({"role": "user", "content": "Now run the tests."})
    result = place_breakpoints(body, frozen_messages=3, min_tokens=0)
    assert result["messages"][3] == {"role": "user", "content": "Now run the tests."}
    assert ("messages", 2, 0) in marked(result)


# place_breakpoints: minimum cacheable size


def test_no_marker_below_the_minimum_cacheable_prefix() -> None:
    body = strip_cache_control(claude_code_body())
    body["system"] = [text("Be brief.")]  # tools + system: far below 1024
    result = place_breakpoints(body, frozen_messages=2)
    assert marked(result) == [("messages", 2, 0)]  # the 300-line listing passes 1024


def test_a_large_system_prompt_is_marked_but_small_tools_before_it_are_not() -> None:
    body = strip_cache_control(claude_code_body())
    result = place_breakpoints(body, frozen_messages=2)
    assert marked(result)[0] == ("system", 1, -1)


def test_a_small_request_is_returned_as_it_is_with_its_string_system() -> None:
    body = {"system": "Be brief.", "messages": [{"role": "user", "content": [text("hi")]}]}
    assert place_breakpoints(body, frozen_messages=0) is body


# place_breakpoints: blocks that cannot or must not carry a marker


def test_thinking_blocks_are_never_marked_and_stay_byte_identical() -> None:
    body = strip_cache_control(claude_code_body())
    thinking = [
        {"type": "thinking", "thinking": "Plan.", "signature": "EqQBCkYIBxgC"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
    ]
    body["messages"][1]["content"] = [body["messages"][1]["content"][2], *thinking]
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    assert ("messages", 1, 0) in marked(result)  # the block before the thinking ones
    assert json.dumps(result["messages"][1]["content"][1:]) == json.dumps(thinking)


def test_empty_text_blocks_are_skipped() -> None:
    body = strip_cache_control(claude_code_body())
    body["messages"][2]["content"].append(text(""))
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    assert ("messages", 2, 0) in marked(result)
    assert "cache_control" not in result["messages"][2]["content"][1]


# place_breakpoints: the 20-block look-back


def test_a_gap_over_twenty_blocks_gets_a_bridge_when_the_budget_allows() -> None:
    body = {"system": "Be brief.", "messages": [{"role": "user", "content": [text("Read.")]}]}
    body["messages"] += tool_round(25)  # blocks 1-25 calls, 26-50 results
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    # frozen end: last call (block 25); newest: last result (block 50); bridge at block 30
    assert marked(result) == [
        ("system", 0, -1),
        ("messages", 1, 24),
        ("messages", 2, 4),
        ("messages", 2, 24),
    ]


def test_a_gap_over_forty_blocks_gets_two_bridges() -> None:
    body = {"messages": [{"role": "user", "content": [text("Read them.")]}]}
    body["messages"] += tool_round(45)  # blocks 1-45 calls, 46-90 results
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    assert marked(result) == [
        ("messages", 1, 44),
        ("messages", 2, 4),
        ("messages", 2, 24),
        ("messages", 2, 44),
    ]


def test_no_bridge_when_tools_system_frozen_and_newest_fill_the_budget() -> None:
    body = strip_cache_control(claude_code_body())
    body["messages"] = body["messages"][:1] + tool_round(25)
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    assert marked(result) == [
        ("tools", 2, -1),
        ("system", 1, -1),
        ("messages", 1, 24),
        ("messages", 2, 24),
    ]


def test_a_gap_of_exactly_twenty_blocks_needs_no_bridge() -> None:
    body = {"messages": tool_round(20)}
    body["messages"].insert(0, {"role": "user", "content": [text("Go.")]})
    result = place_breakpoints(body, frozen_messages=2, min_tokens=0)
    assert marked(result) == [("messages", 1, 19), ("messages", 2, 19)]


# place_breakpoints: bad input


def test_frozen_messages_beyond_the_conversation_is_refused() -> None:
    body = strip_cache_control(claude_code_body())
    with pytest.raises(ConfigError, match="frozen_messages is 4, but the request has 3"):
        place_breakpoints(body, frozen_messages=4)


def test_a_message_without_content_is_refused() -> None:
    with pytest.raises(InvalidMessagesError, match=r"messages\[0\]"):
        place_breakpoints({"messages": [{"role": "user"}]}, frozen_messages=0)


# property: random conversations

_TEXT = st.text(alphabet="abc xyz\n", max_size=60)
_BLOCK = st.one_of(
    st.builds(text, _TEXT),
    st.just({"type": "thinking", "thinking": "hmm", "signature": "sig"}),
    st.just({"type": "redacted_thinking", "data": "opaque"}),
    st.builds(
        lambda t: {"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": t}}, _TEXT
    ),
    st.builds(lambda t: {"type": "tool_result", "tool_use_id": "t", "content": [text(t)]}, _TEXT),
)
_CONTENT = st.one_of(_TEXT, st.lists(_BLOCK, min_size=1, max_size=30))
_SYSTEM = st.one_of(st.none(), _TEXT, st.lists(st.builds(text, _TEXT), max_size=3))


@st.composite
def conversations(draw: st.DrawFn) -> tuple[dict[str, Any], int, int]:
    contents = draw(st.lists(_CONTENT, min_size=1, max_size=8))
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "tools": copy.deepcopy(TOOLS[: draw(st.integers(0, 3))]),
        "messages": [
            {"role": "user" if i % 2 == 0 else "assistant", "content": c}
            for i, c in enumerate(contents)
        ],
    }
    system = draw(_SYSTEM)
    if system is not None:
        body["system"] = system
    return body, draw(st.integers(0, len(contents))), draw(st.sampled_from([0, 20, 200, 1024]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_random_conversations_never_get_more_than_four_and_only_markers_change(
    case: tuple[dict[str, Any], int, int],
) -> None:
    body, frozen, min_tokens = case
    before = copy.deepcopy(body)
    result = place_breakpoints(body, frozen, min_tokens)
    assert body == before
    assert count_breakpoints(result) <= 4
    unmarked = strip_cache_control(result)
    if isinstance(body.get("system"), str) and isinstance(unmarked.get("system"), list):
        unmarked["system"] = unmarked["system"][0]["text"]
    assert unmarked == body
    for message in result["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block["type"] in ("thinking", "redacted_thinking") or block.get("text") == "":
                assert "cache_control" not in block
