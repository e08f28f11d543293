"""Reading payloads out of Gemini `contents`, writing them back, and a Gemini body through
the conversation layer."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from headroom import messages
from headroom.config import Settings
from headroom.conversation.request import prepare
from headroom.errors import InvalidMessagesError
from headroom.store import open_store

LOG = "".join(f"tests/test_{n}.py::test_case PASSED\n" for n in range(40))
SOURCE = (Path(json.__file__).parent / "decoder.py").read_text()


def call(name: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"functionCall": {"name": name, "args": args, **extra}}


def result(name: str, response: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"functionResponse": {"name": name, "response": response, **extra}}


def conversation() -> list[dict[str, Any]]:
    return [
        {"role": "user", "parts": [{"text": "Why does the build fail?"}]},
        {"role": "model", "parts": [
            {"text": "Let me look."},
            call("run_shell", {"command": "pytest -q"}),
            call("read_file", {"path": "/src/app.py", "offset": 10, "limit": 20}),
        ]},
        {"role": "user", "parts": [
            result("run_shell", {"output": LOG, "exit_code": 1}),
            result("read_file", {"content": SOURCE}),
        ]},
    ]  # fmt: skip


def test_function_responses_are_payloads_with_hints_from_their_calls() -> None:
    found = messages.read(conversation())
    assert found.shape == "gemini"
    shell, read = found.payloads
    assert (shell.location, shell.text, shell.tool, shell.hints.command) == (
        (2, 0, 0),
        LOG,
        "run_shell",
        "pytest -q",
    )
    assert (read.location, read.hints.path, read.ranged_read) == ((2, 1, 0), "/src/app.py", True)
    assert found.query == "Why does the build fail?"


def test_calls_pair_with_responses_by_id_then_in_order_by_name() -> None:
    by_id = conversation()
    by_id[1]["parts"][1:] = [call("run_shell", {"command": "ls"}, id="a"),
                             call("run_shell", {"command": "pwd"}, id="b")]  # fmt: skip
    by_id[2]["parts"] = [result("run_shell", {"output": LOG}, id="b"),
                         result("run_shell", {"output": LOG}, id="a")]  # fmt: skip
    assert [p.hints.command for p in messages.read(by_id).payloads] == ["pwd", "ls"]
    for part in itertools.chain(by_id[1]["parts"][1:], by_id[2]["parts"]):
        next(iter(part.values())).pop("id")
    assert [p.hints.command for p in messages.read(by_id).payloads] == ["ls", "pwd"]


def test_a_large_json_value_is_one_payload_written_back_as_a_string() -> None:
    records = [{"id": n, "name": f"user{n}", "active": n % 3 == 0} for n in range(60)]
    contents = conversation()[:2]
    contents.append({"role": "user", "parts": [result("run_shell", {"rows": records, "n": 60})]})
    [payload] = messages.read(contents).payloads
    assert payload.location == (2, 0, 0)
    assert payload.text == json.dumps(records, separators=(",", ":"))
    written = messages.write(contents, {payload.location: "[compressed]"})
    assert written[2]["parts"][0]["functionResponse"]["response"] == {
        "rows": "[compressed]",
        "n": 60,
    }
    assert contents[2]["parts"][0]["functionResponse"]["response"]["rows"] == records


def test_a_value_made_of_a_few_large_strings_yields_each_string() -> None:
    response = {"result": {"stdout": LOG, "stderr": "", "files": [{"path": "a", "text": SOURCE}]}}
    contents = [*conversation()[:2], {"role": "user", "parts": [result("run_shell", response)]}]
    found = messages.read(contents).payloads
    assert [(p.location, p.text) for p in found] == [
        ((2, 0, 0, 0), LOG),
        ((2, 0, 0, 2, 0, 1), SOURCE),
    ]
    written = messages.write(contents, {p.location: "x" for p in found})
    reply = written[2]["parts"][0]["functionResponse"]["response"]["result"]
    assert reply == {"stdout": "x", "stderr": "", "files": [{"path": "a", "text": "x"}]}


def test_small_values_are_left_alone() -> None:
    contents = conversation()[:2]
    small = {"output": "ok", "items": [{"a": 1}, {"b": "two"}]}
    contents.append({"role": "user", "parts": [result("run_shell", small)]})
    assert messages.read(contents).payloads == []


def test_write_copies_only_what_it_changes() -> None:
    contents = conversation()
    snapshot = copy.deepcopy(contents)
    written = messages.write(contents, {(2, 0, 0): "short"})
    assert contents == snapshot
    assert written[0] is contents[0] and written[1] is contents[1]
    assert written[2]["parts"][0]["functionResponse"]["response"] == {
        "output": "short",
        "exit_code": 1,
    }
    assert written[2]["parts"][1] == contents[2]["parts"][1]


def test_snake_case_fields_are_read_and_written() -> None:
    contents = [
        {"role": "model", "parts": [{"function_call": {"name": "run_shell", "args": {"cmd": "ls"}}}]},
        {"role": "user", "parts": [{"function_response": {"name": "run_shell",
                                                          "response": {"output": LOG}}}]},
    ]  # fmt: skip
    [payload] = messages.read(contents).payloads
    assert payload.hints.command == "ls"
    written = messages.write(contents, {payload.location: "x"})
    assert written[1]["parts"][0]["function_response"]["response"] == {"output": "x"}


def test_a_file_edited_earlier_is_marked_edited() -> None:
    contents = conversation()
    contents[1:1] = [
        {"role": "model", "parts": [call("edit", {"path": "/src/app.py", "old_string": "a",
                                                   "new_string": "b"})]},
        {"role": "user", "parts": [result("edit", {"output": "done"})]},
    ]  # fmt: skip
    shell, read = messages.read(contents).payloads
    assert (shell.edited, read.edited) == (False, True)


def test_the_query_skips_function_responses_and_system_reminders() -> None:
    contents = conversation()
    contents.append({"role": "model", "parts": [{"text": "Found it."}]})
    contents.append({"role": "user", "parts": [
        {"text": "<system-reminder>be brief</system-reminder>"}, {"text": "And the fix?"}]})  # fmt: skip
    assert messages.read(contents).query == "And the fix?"
    assert messages.read([{"parts": [{"text": "No role is the user."}]}]).query == (
        "No role is the user."
    )


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ([{"parts": []}, 3], r"contents\[1\] must be an object"),
        ([{"parts": "hi"}], r"contents\[0\]\.parts must be a list"),
        ([{"parts": ["hi"]}], r"contents\[0\]\.parts\[0\] must be an object"),
        ([{"parts": [{"functionResponse": "x"}]}], r"parts\[0\]\.functionResponse must be"),
    ],
)
def test_unreadable_contents_are_clear_errors(contents: list[Any], message: str) -> None:
    with pytest.raises(InvalidMessagesError, match=message):
        messages.read(contents)


def test_a_gemini_body_keeps_its_tools_and_a_byte_identical_prefix_turn_by_turn() -> None:
    store = open_store("memory://")
    tools = [{"functionDeclarations": [{"name": "run_shell", "parameters": {"type": "object"}}]}]
    system = {"parts": [{"text": "You are careful. Today's date: 2026-11-25"}]}
    first: dict[str, Any] = {"model": "gemini-2.5-flash", "systemInstruction": system,
                             "tools": tools, "contents": conversation()}  # fmt: skip
    second = copy.deepcopy(first)
    second["contents"] += [
        {"role": "model", "parts": [call("run_shell", {"command": "cat setup.py"})]},
        {"role": "user", "parts": [result("run_shell", {"output": SOURCE})]},
    ]
    before = prepare(first, "gemini", store, Settings())
    after = prepare(second, "gemini", store, Settings())
    assert before.body["tools"] is tools and before.volatile
    dumped = [json.dumps(c) for c in after.body["contents"]]
    assert dumped[:3] == [json.dumps(c) for c in before.body["contents"]]
    assert after.turn.frozen == 3 and not after.turn.busts
    assert len(dumped[2]) < len(json.dumps(first["contents"][2])) // 2
    assert after.turn.session == before.turn.session


def test_headroom_retrieve_responses_are_never_payloads() -> None:
    contents = [
        {"role": "model", "parts": [call("headroom_retrieve", {"key": "0123456789abcdef"})]},
        {"role": "user", "parts": [result("headroom_retrieve", {"content": LOG})]},
    ]
    assert messages.read(contents).payloads == []
