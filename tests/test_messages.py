"""Reading payloads out of Anthropic and OpenAI conversations, and writing them back."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from headroom import messages
from headroom.errors import InvalidMessagesError


def anthropic_conversation() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Why does the build fail?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "pytest -q"}},
            {"type": "tool_use", "id": "toolu_2", "name": "Read",
             "input": {"file_path": "/src/app.py", "offset": 10, "limit": 20}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "FAILED test_x"},
            {"type": "tool_result", "tool_use_id": "toolu_2",
             "content": [{"type": "text", "text": "    10→x = 1"}]},
            {"type": "text", "text": "<system-reminder>be careful</system-reminder>"},
        ]},
    ]  # fmt: skip


def openai_conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Why does the build fail?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "shell", "arguments": '{"command": "pytest -q"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "FAILED test_x"},
    ]  # fmt: skip


def test_anthropic_payloads_carry_hints_from_their_tool_calls() -> None:
    found = messages.read(anthropic_conversation())
    assert found.shape == "anthropic"
    bash, read = found.payloads
    assert (bash.location, bash.text, bash.hints.command) == (
        (2, 0, -1),
        "FAILED test_x",
        "pytest -q",
    )
    assert (read.location, read.hints.path, read.ranged_read) == ((2, 1, 0), "/src/app.py", True)


def test_the_query_skips_tool_results_and_system_reminders() -> None:
    assert messages.read(anthropic_conversation()).query == "Why does the build fail?"


def test_openai_tool_messages_are_payloads_with_parsed_arguments() -> None:
    found = messages.read(openai_conversation())
    assert found.shape == "openai"
    [payload] = found.payloads
    assert (payload.location, payload.hints.command, payload.tool) == (
        (3, -1),
        "pytest -q",
        "shell",
    )
    assert found.query == "Why does the build fail?"


def test_write_replaces_only_the_payloads_and_leaves_the_input_unchanged() -> None:
    original = anthropic_conversation()
    snapshot = copy.deepcopy(original)
    result = messages.write(original, {(2, 0, -1): "short", (2, 1, 0): "read"})
    assert original == snapshot
    assert result[2]["content"][0]["content"] == "short"
    assert result[2]["content"][1]["content"][0]["text"] == "read"
    assert result[0] is original[0] and result[1] is original[1]
    assert result[2]["content"][0]["tool_use_id"] == "toolu_1"


def test_write_on_openai_string_content() -> None:
    result = messages.write(openai_conversation(), {(3, -1): "short"})
    assert result[3] == {"role": "tool", "tool_call_id": "call_1", "content": "short"}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("not a list", "must be a list"),
        ([{"content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 5}], "messages[0].content must be a string"),
        ([{"role": "user", "content": [{"text": "x"}]}], "messages[0].content[0]"),
        ([42], "messages[0] must be an object"),
    ],
)
def test_invalid_shapes_raise_an_error_naming_the_problem(bad: Any, expected: str) -> None:
    with pytest.raises(
        InvalidMessagesError, match=expected.replace("[", r"\[").replace("]", r"\]")
    ):
        messages.read(bad)


@pytest.mark.parametrize("calls", ["abc", [None], [{"function": "shell"}]])
def test_malformed_tool_calls_are_invalid_messages(calls: Any) -> None:
    bad = [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": calls}]
    with pytest.raises(InvalidMessagesError, match=r"messages\[1\]\.tool_calls"):
        messages.read(bad)


def test_claude_codes_preview_of_a_persisted_output_is_not_a_payload() -> None:
    preview = (
        "<persisted-output>\nOutput too large (61.2KB). Full output saved to: /tmp/out.txt\n\n"
        "Preview (first 2KB):\n" + "line\n" * 400 + "</persisted-output>"
    )
    sent = [
        {"role": "user", "content": "build it"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "make"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": preview},
            {"type": "tool_result", "tool_use_id": "t1",
             "content": [{"type": "text", "text": "  " + preview}]},
        ]},
    ]  # fmt: skip
    assert messages.read(sent).payloads == []
