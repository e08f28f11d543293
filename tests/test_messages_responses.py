"""Reading payloads out of OpenAI Responses `input` items, writing them back, and a Responses
body through the conversation layer."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from headroom import messages
from headroom.config import Settings
from headroom.conversation.request import prepare
from headroom.errors import InvalidMessagesError
from headroom.store import open_store

LOG = "".join(f"tests/test_{n}.py::test_case PASSED\n" for n in range(40))


def function_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name,
            "arguments": json.dumps(arguments)}  # fmt: skip


def items() -> list[dict[str, Any]]:
    return [
        {"role": "developer", "content": "You are careful."},
        {"role": "user", "content": [{"type": "input_text", "text": "Why does the build fail?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        function_call("c1", "shell", {"command": ["bash", "-lc", "pytest -q"]}),
        function_call("c2", "read", {"path": "/src/app.py", "offset": 10}),
        {"type": "function_call_output", "call_id": "c1", "output": LOG},
        {"type": "function_call_output", "call_id": "c2", "output": [
            {"type": "input_text", "text": "    10 x = 1"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
        ]},
        {"type": "custom_tool_call_output", "call_id": "c3", "output": "patched"},
    ]  # fmt: skip


def test_tool_outputs_are_payloads_with_hints_from_their_calls() -> None:
    found = messages.read(items())
    assert found.shape == "responses"
    shell, read, custom = found.payloads
    assert (shell.location, shell.text, shell.tool, shell.hints.command) == (
        (5, -1),
        LOG,
        "shell",
        "bash -lc pytest -q",
    )
    assert (read.location, read.text, read.hints.path, read.ranged_read) == (
        (6, 0),
        "    10 x = 1",
        "/src/app.py",
        True,
    )
    assert (custom.location, custom.tool) == ((7, -1), None)
    assert found.query == "Why does the build fail?"


def test_write_replaces_outputs_and_leaves_the_input_unchanged() -> None:
    original = items()
    snapshot = copy.deepcopy(original)
    written = messages.write(original, {(5, -1): "short", (6, 0): "x"})
    assert original == snapshot
    assert written[5]["output"] == "short" and written[6]["output"][0]["text"] == "x"
    assert written[6]["output"][1] == original[6]["output"][1]
    assert written[:5] == original[:5] and written[4] is original[4]


def test_a_file_edited_earlier_is_marked_edited() -> None:
    edit = function_call(
        "c0", "edit", {"path": "/src/app.py", "old_string": "a", "new_string": "b"}
    )
    input_ = [items()[1], edit, *items()[3:]]
    shell, read, _ = messages.read(input_).payloads
    assert (shell.edited, read.edited) == (False, True)


def test_a_plain_message_input_reads_like_a_chat() -> None:
    found = messages.read([{"role": "user", "content": "hi"}])
    assert found.payloads == [] and found.query == "hi"


@pytest.mark.parametrize(
    ("input_", "message"),
    [
        ([{"type": "reasoning"}, "hi"], r"input\[1\] must be an item object"),
        ([{"type": "function_call_output", "call_id": "c", "output": 5}], r"input\[0\]\.output"),
        ([{"role": "user", "content": 5}, {"type": "reasoning"}], r"input\[0\]\.content"),
        ([{"type": "function_call_output", "output": ["x"]}], r"input\[0\]\.output\[0\]"),
    ],
)
def test_unreadable_items_are_clear_errors(input_: list[Any], message: str) -> None:
    with pytest.raises(InvalidMessagesError, match=message):
        messages.read(input_)


def body(input_: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "instructions": "Today's date: 2026-11-25", "input": input_, **extra}


def test_a_string_input_and_a_missing_one_are_forwarded_as_they_came() -> None:
    store = open_store("memory://")
    for request in (body("What is the answer?"), {"model": "gpt-4o", "prompt": {"id": "p"}}):
        prepared = prepare(request, "openai-responses", store, Settings())
        assert prepared.body == request
    assert prepare(body("hi"), "openai-responses", store, Settings()).volatile


def test_a_bad_input_is_a_clear_error() -> None:
    with pytest.raises(InvalidMessagesError, match="'input' must be a string or a list"):
        prepare(body(42), "openai-responses", open_store("memory://"), Settings())


def test_outputs_are_compressed_and_replayed_byte_identical() -> None:
    store = open_store("memory://")
    output = "".join(
        f"tests/test_{n}.py::test_case_{m} PASSED\n" for n in range(50) for m in range(4)
    )
    first = body(
        [*items()[:5], {"type": "function_call_output", "call_id": "c1", "output": output}]
    )
    second = copy.deepcopy(first)
    second["input"].append({"role": "user", "content": "And now?"})
    before = prepare(first, "openai-responses", store, Settings())
    after = prepare(second, "openai-responses", store, Settings())
    assert len(before.body["input"][5]["output"]) < len(output) // 2
    assert json.dumps(after.body["input"][:6]) == json.dumps(before.body["input"])
    assert after.turn.frozen == 6 and not after.turn.busts


def test_a_continued_response_compares_nothing_with_the_last_turn() -> None:
    store = open_store("memory://")
    output = {"type": "function_call_output", "call_id": "c9", "output": LOG}
    prepare(body(items()), "openai-responses", store, Settings(), session="s")
    continued = body([output], previous_response_id="resp_1")
    prepared = prepare(continued, "openai-responses", store, Settings(), session="s")
    assert prepared.turn.busts == [] and prepared.turn.frozen == 0


def test_headroom_retrieve_outputs_are_never_payloads() -> None:
    input_ = [
        function_call("r1", "headroom_retrieve", {"key": "0123456789abcdef"}),
        {"type": "function_call_output", "call_id": "r1", "output": LOG},
    ]
    assert messages.read(input_).payloads == []
