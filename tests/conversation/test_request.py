"""A request body through the conversation layer, turn after turn, as Claude Code sends it."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import tokens
from headroom.config import Settings
from headroom.conversation import breakpoints, prefix, request
from headroom.conversation.accounts import load_ledger
from headroom.conversation.live_zone import origin
from headroom.conversation.request import account, prepare
from headroom.errors import ConfigError, InvalidMessagesError
from headroom.store import open_store

STDLIB = Path(json.__file__).parent.parent
SYSTEM_TEXT = (
    "You are an interactive CLI tool that helps users with software engineering tasks.\n"
    * 40
    + "<env>\nWorking directory: /home/user/project\nIs directory a git repo: Yes\n"
    "Platform: linux\nToday's date: 2026-11-25\n</env>\n"
)


def tool(name: str, props: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": f"The {name} tool.",
            "input_schema": {"type": "object", "properties": props, "required": list(props)}}  # fmt: skip


TOOLS = [
    tool("Bash", {"command": {"type": "string"}, "timeout": {"type": "number"}}),
    tool("Read", {"file_path": {"type": "string"}, "offset": {"type": "number"}}),
    tool("Edit", {"file_path": {"type": "string"}, "old_string": {"type": "string"}}),
]


def grep(pattern: str, folder: str) -> str:
    found = subprocess.run(
        ["grep", "-rn", pattern, str(STDLIB / folder)], capture_output=True, text=True
    )
    return found.stdout


def bodies(client_breakpoints: bool) -> list[dict[str, Any]]:
    """Three turns of a Claude Code-like session: each resends everything plus one result."""
    system = [
        {"type": "text", "text": "You are Claude Code."},
        {"type": "text", "text": SYSTEM_TEXT},
    ]
    if client_breakpoints:
        for block in system:
            block["cache_control"] = {"type": "ephemeral"}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Where are the decoders defined?"}
    ]
    turns = []
    for number, folder in enumerate(("json", "email", "http")):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "Let me search.",
                        "signature": f"sig{number}==",
                    },
                    {
                        "type": "tool_use",
                        "id": f"toolu_{number}",
                        "name": "Bash",
                        "input": {"command": f"grep -rn def {folder}"},
                    },
                ],
            }
        )
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": f"toolu_{number}",
                                  "content": grep("def ", folder)}  # fmt: skip
        for message in messages:
            for block in message["content"] if isinstance(message["content"], list) else []:
                block.pop("cache_control", None)
        if client_breakpoints:
            result["cache_control"] = {"type": "ephemeral"}
        messages.append({"role": "user", "content": [result]})
        tools = copy.deepcopy(TOOLS if number != 1 else list(reversed(TOOLS)))
        turns.append({"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": system,
                      "tools": tools, "messages": copy.deepcopy(messages)})  # fmt: skip
    return turns


def canonical(value: Any) -> str:
    return json.dumps(prefix.without_cache_control(value), sort_keys=True)


@pytest.mark.parametrize("client_breakpoints", [True, False])
def test_turns_keep_tools_system_and_history_byte_identical(client_breakpoints: bool) -> None:
    store = open_store("memory://")
    forwarded = [
        prepare(b, "anthropic", store, Settings()).body for b in bodies(client_breakpoints)
    ]
    for before, after in itertools.pairwise(forwarded):
        assert canonical(after["tools"]) == canonical(before["tools"])
        assert canonical(after["system"]) == canonical(before["system"])
        sent = len(before["messages"])
        assert canonical(after["messages"][:sent]) == canonical(before["messages"])
    for body in forwarded:
        assert breakpoints.count_breakpoints(body) <= 4
    last = forwarded[-1]["messages"]
    assert last[1]["content"][0] == {
        "type": "thinking",
        "thinking": "Let me search.",
        "signature": "sig0==",
    }
    assert len(last[2]["content"][0]["content"]) < len(grep("def ", "json"))


def test_a_client_breakpoints_are_left_where_it_put_them() -> None:
    store = open_store("memory://")
    body = bodies(client_breakpoints=True)[2]
    forwarded = prepare(body, "anthropic", store, Settings()).body
    assert breakpoints.count_breakpoints(forwarded) == breakpoints.count_breakpoints(body) == 3
    assert forwarded["messages"][-1]["content"][0]["cache_control"] == {"type": "ephemeral"}


def test_breakpoints_are_placed_when_the_client_sets_none() -> None:
    store = open_store("memory://")
    prepared = [
        prepare(b, "anthropic", store, Settings()) for b in bodies(client_breakpoints=False)
    ]
    assert all(1 <= breakpoints.count_breakpoints(p.body) <= 4 for p in prepared)
    last = prepared[-1].body
    assert "cache_control" not in last["tools"][-1]  # tools alone are under the cacheable minimum
    assert last["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}


def test_volatile_system_lines_are_reported_and_moved_only_when_asked() -> None:
    body = bodies(client_breakpoints=True)[0]
    kept = prepare(body, "anthropic", open_store("memory://"), Settings())
    assert any("2026-11-25" in v.text for v in kept.volatile)
    assert canonical(kept.body["system"]) == canonical(body["system"])
    moved = prepare(body, "anthropic", open_store("memory://"), Settings(move_volatile=True))
    assert "2026-11-25" in moved.body["system"][-1]["text"]
    assert "2026-11-25" not in moved.body["system"][1]["text"]


def test_the_callers_body_is_not_changed() -> None:
    body = bodies(client_breakpoints=False)[2]
    snapshot = copy.deepcopy(body)
    prepare(body, "anthropic", open_store("memory://"), Settings())
    assert body == snapshot


def test_openai_bodies_go_through_without_breakpoints() -> None:
    body = {"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are helpful. Today's date: 2026-11-25"},
        {"role": "user", "content": "Which modules define decoders?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "shell", "arguments": "{\"command\": \"grep -rn def json\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": grep("def ", "json")},
    ]}  # fmt: skip
    prepared = prepare(body, "openai", open_store("memory://"), Settings())
    assert breakpoints.count_breakpoints(prepared.body) == 0
    assert len(prepared.body["messages"][3]["content"]) < len(body["messages"][3]["content"])
    assert prepared.volatile


def test_bad_bodies_and_settings_are_clear_errors() -> None:
    with pytest.raises(InvalidMessagesError, match="no 'messages' list"):
        prepare({"model": "x"}, "anthropic", open_store("memory://"), Settings())
    for provider in ("anthropic", "openai"):
        with pytest.raises(InvalidMessagesError, match=r"messages\[0\] must be an object"):
            prepare({"messages": [1]}, provider, open_store("memory://"), Settings())
    with pytest.raises(InvalidMessagesError, match="provider"):
        prepare({"messages": []}, "mistral", open_store("memory://"), Settings())
    with pytest.raises(ConfigError, match="HEADROOM_MOVE_VOLATILE"):
        Settings.from_env({"HEADROOM_MOVE_VOLATILE": "maybe"})
    assert Settings.from_env({"HEADROOM_MOVE_VOLATILE": "yes"}).move_volatile


def agent_turns(count: int, small_after: int = 99) -> list[dict[str, Any]]:
    """Bodies of an agent loop reading stdlib modules, one more tool result each turn;
    from turn `small_after` on, the results are short (`ls`-sized)."""
    modules = ["json/decoder.py", "json/encoder.py", "json/scanner.py", "email/utils.py",
               "http/cookies.py", "string.py", "textwrap.py", "shlex.py"][:count]  # fmt: skip
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Why does the decoder fail?"}]
    turns = []
    for number, module in enumerate(modules):
        output = (STDLIB / module).read_text() if number < small_after else f"{module}\n"
        messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{number}",
            "name": "Bash", "input": {"command": f"cat {module}"}}]})  # fmt: skip
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{number}",
            "content": output}]})  # fmt: skip
        turns.append({"model": "claude-sonnet-4-5", "messages": copy.deepcopy(messages)})
    return turns


def test_over_budget_old_results_are_stubbed_once_and_the_stubs_replayed() -> None:
    store = open_store("memory://")
    settings = Settings(budget_tokens=12_000, min_tokens=10**9)  # no compression: budget only
    turns = agent_turns(8, small_after=5)
    prepared = [prepare(b, "anthropic", store, settings, session="b") for b in turns]
    trimmed = [n for n, p in enumerate(prepared) if p.trim is not None and p.trim.stubbed]
    assert trimmed and trimmed[-1] <= 5, "the big results went over the budget"
    stubs = [s for n in trimmed for s in (prepared[n].trim.stubbed if prepared[n].trim else [])]
    assert all(s.message >= 2 for s in stubs)  # the first user message stays
    assert len(prepared) - trimmed[-1] >= 3
    for before, after in itertools.pairwise(prepared[trimmed[-1] :]):
        sent = len(before.body["messages"])
        assert canonical(after.body["messages"][:sent]) == canonical(before.body["messages"])
    for stub in stubs:
        assert store.get(stub.key) is not None


def test_a_client_that_compacts_its_own_context_is_never_trimmed() -> None:
    store = open_store("memory://")
    settings = Settings(budget_tokens=12_000, min_tokens=10**9)
    body = agent_turns(7)[-1]
    prepared = prepare(body, "anthropic", store, settings, client_compacts=True)
    assert prepared.trim is None
    assert canonical(prepared.body["messages"]) == canonical(body["messages"])


def test_accounting_records_turns_compressions_and_retrievals() -> None:
    store = open_store("memory://")
    settings = Settings(store="memory://")
    for body in bodies(client_breakpoints=True):
        account(store, body, prepare(body, "anthropic", store, settings, session="acct"))
    [session] = load_ledger(store).sessions()
    assert (session.session, session.turns, session.simulated_turns) == ("acct", 3, 3)
    assert session.forwarded < session.sent
    assert session.cost < session.baseline_cost
    [search] = [k for k in session.kinds if k.kind == "search"]
    assert search.compressed == 3 and search.retrieved == 0
    key = (
        prepare(bodies(True)[0], "anthropic", store, settings, session="acct")
        .turn.transforms[0]
        .keys[0]
    )
    assert origin(store, key) == ("acct", "search")


def test_a_reported_usage_is_billed_as_reported() -> None:
    store = open_store("memory://")
    body = bodies(client_breakpoints=True)[0]
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 2000, "output_tokens": 5}  # fmt: skip
    account(store, body, prepare(body, "anthropic", store, Settings(), session="u"), usage)
    [session] = load_ledger(store).sessions()
    assert session.simulated_turns == 0
    assert session.usage.read == 2000


def test_a_small_window_model_still_gets_a_positive_budget() -> None:
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
    prepared = prepare(body, "openai", open_store("memory://"), Settings())
    assert prepared.trim is None


def test_openai_tool_messages_with_list_content_keep_their_stubs() -> None:
    store = open_store("memory://")
    settings = Settings(budget_tokens=12_000, min_tokens=10**9)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Why does the decoder fail?"}]
    forwarded = []
    modules = ["json/decoder.py", "json/encoder.py", "email/utils.py", "http/cookies.py",
               "string.py", "textwrap.py", "shlex.py", "json/scanner.py", "glob.py", "fnmatch.py"]  # fmt: skip
    for number, module in enumerate(modules):
        text = (STDLIB / module).read_text() if number < 5 else "short"
        messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": f"c{number}",
            "type": "function", "function": {"name": "shell", "arguments": "{}"}}]})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": f"c{number}",
                         "content": [{"type": "text", "text": text}]})  # fmt: skip
        body = {"model": "gpt-4o", "messages": copy.deepcopy(messages)}
        forwarded.append(prepare(body, "openai", store, settings, session="o"))
    trimmed = [n for n, p in enumerate(forwarded) if p.trim is not None and p.trim.stubbed]
    assert trimmed and len(forwarded) - trimmed[-1] >= 3
    for before, after in itertools.pairwise(forwarded[trimmed[-1] :]):
        sent = len(before.body["messages"])
        assert canonical(after.body["messages"][:sent]) == canonical(before.body["messages"])


JSON_TEXT = st.text(
    alphabet=st.sampled_from([*"ab Z9_.,:;'\"!?-()[]{}\\/\n\t ", "é", "世", "🎉", "\u200b"]),
    max_size=40,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "content": JSON_TEXT},
    optional={"n": st.integers(-5, 10**6), "parts": st.lists(JSON_TEXT, max_size=3)},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(MESSAGE, max_size=6))
def test_the_budget_estimate_counts_exactly_what_the_whole_json_counts(
    messages: list[dict[str, Any]],
) -> None:
    items = [json.dumps(message) for message in messages]
    whole = tokens.count(json.dumps(messages, ensure_ascii=False))
    assert request._json_tokens(messages, items) == whole
