"""Stable tool definitions and system prompts: normalised tools, volatile content found,
diffed and (opt-in) moved to the end."""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.conversation.stable import (
    Volatile,
    diff_volatile,
    find_volatile,
    move_volatile_to_end,
    normalize_tools,
    tool_names,
)
from headroom.errors import HeadroomError, InvalidMessagesError

SCHEMA = "http://json-schema.org/draft-07/schema#"


def claude_code_tools() -> list[dict[str, Any]]:
    return [
        {"name": "Bash", "description": "Executes a given bash command in a persistent shell session.",
         "input_schema": {"type": "object", "properties": {
             "command": {"type": "string", "description": "The command to execute"},
             "timeout": {"type": "number", "description": "Optional timeout in milliseconds (max 600000)"},
             "description": {"type": "string", "description": "Clear, concise description of what this command does"},
             "run_in_background": {"type": "boolean", "description": "Set to true to run this command in the background."}},
             "required": ["command"], "additionalProperties": False, "$schema": SCHEMA}},
        {"name": "Read", "description": "Reads a file from the local filesystem.",
         "input_schema": {"type": "object", "properties": {
             "file_path": {"type": "string", "description": "The absolute path to the file to read"},
             "offset": {"type": "number", "description": "The line number to start reading from"},
             "limit": {"type": "number", "description": "The number of lines to read"}},
             "required": ["file_path"], "additionalProperties": False, "$schema": SCHEMA}},
        {"name": "TodoWrite", "description": "Create and manage a structured task list.",
         "input_schema": {"type": "object", "properties": {"todos": {"type": "array", "items": {
             "type": "object", "properties": {
                 "content": {"type": "string", "minLength": 1},
                 "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                 "activeForm": {"type": "string", "minLength": 1}},
             "required": ["content", "status", "activeForm"], "additionalProperties": False},
             "description": "The updated todo list"}},
             "required": ["todos"], "additionalProperties": False, "$schema": SCHEMA}},
        {"name": "Grep", "description": "A powerful search tool built on ripgrep.",
         "input_schema": {"type": "object", "properties": {
             "pattern": {"type": "string"}, "path": {"type": "string"},
             "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]}},
             "required": ["pattern"], "additionalProperties": False, "$schema": SCHEMA},
         "cache_control": {"type": "ephemeral"}},
    ]  # fmt: skip


def openai_chat_tools() -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": "shell", "description": "Run a shell command.",
         "parameters": {"type": "object", "properties": {
             "command": {"type": "array", "items": {"type": "string"}},
             "workdir": {"type": "string"}, "timeout_ms": {"type": "integer"}},
             "required": ["command"], "additionalProperties": False}, "strict": False}},
        {"type": "function", "function": {"name": "apply_patch", "description": "Apply a patch.",
         "parameters": {"type": "object", "properties": {"input": {"type": "string"}},
                        "required": ["input"]}}},
    ]  # fmt: skip


CLAUDE_CODE_PROMPT = """
You are an interactive CLI tool that helps users with software engineering tasks. Use the instructions below and the tools available to you to assist the user.

# Doing tasks
Step 1: understand the request. Step 2: search the codebase. Step 3: implement and verify.

Here is useful information about the environment you are running in:
<env>
Working directory: /Users/dana/src/shop
Is directory a git repo: Yes
Platform: darwin
OS Version: Darwin 24.6.0
Today's date: 2026-11-25
</env>
You are powered by the model named Sonnet 4.5. The exact model ID is claude-sonnet-4-5-20250929.

Assistant knowledge cutoff is January 2025.

IMPORTANT: Always use the TodoWrite tool to plan and track tasks throughout the conversation.

gitStatus: This is the git status at the start of the conversation. Note that this status is a snapshot in time, and will not update during the conversation.
Current branch: fix/cart-total

Main branch (you will usually use this for PRs): main

Status:
M src/cart.py
?? notes.md

Recent commits:
4e1f0a2 Round cart totals to cents
9c3b7d1 Add cart service
"""


def claude_code_system(prompt: str = CLAUDE_CODE_PROMPT) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
         "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}},
    ]  # fmt: skip


def next_day_in_another_repo() -> str:
    return (
        CLAUDE_CODE_PROMPT.replace("2026-11-25", "2026-11-26")
        .replace("/Users/dana/src/shop", "/Users/dana/src/billing")
        .replace("fix/cart-total", "main")
        .replace("4e1f0a2 Round cart totals to cents", "77ab01c Send invoices daily")
    )


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- tools ---------------------------------------------------------------------------------


def test_tool_names_read_anthropic_openai_chat_responses_and_builtin_tools() -> None:
    tools = [
        claude_code_tools()[0],
        openai_chat_tools()[0],
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
        {"type": "web_search_preview"},
    ]
    assert tool_names(tools) == ["Bash", "shell", "get_weather", "web_search_preview"]


@pytest.mark.parametrize("tools", [claude_code_tools(), openai_chat_tools()])
def test_the_first_turn_forwards_each_tool_byte_for_byte_as_the_client_sent_it(
    tools: list[dict[str, Any]],
) -> None:
    assert dumps(normalize_tools(tools, None)) == dumps(tools)


def test_tools_differing_only_in_key_order_get_last_turns_bytes() -> None:
    tools = claude_code_tools()
    first = normalize_tools(tools, None)
    reordered = [{key: _reverse_keys(tool[key]) for key in reversed(list(tool))} for tool in tools]
    assert dumps(reordered) != dumps(tools)
    assert dumps(normalize_tools(reordered, _without_markers(first))) == dumps(first)


def test_openai_chat_and_responses_flat_tools_get_last_turns_bytes() -> None:
    flat = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {
        "b": {"type": "string"}, "a": {"type": "string"}}, "required": ["b", "a"]}}  # fmt: skip
    tools = [*openai_chat_tools(), flat]
    first = normalize_tools(tools, None)
    reordered = [_reverse_keys(tool) for tool in tools]
    assert dumps(normalize_tools(reordered, first)) == dumps(first)


def test_a_changed_tool_goes_as_the_client_sent_it() -> None:
    first = normalize_tools(claude_code_tools(), None)
    changed = claude_code_tools()
    changed[1] = _reverse_keys({**changed[1], "description": "Reads a file, now with images."})
    result = normalize_tools(changed, _without_markers(first))
    assert dumps(result[1]) == dumps(changed[1])
    assert dumps(result[0]) == dumps(first[0])


def test_lists_keep_their_order_and_numbers_their_type_when_compared() -> None:
    first = normalize_tools([{"name": "f", "enum": ["a", "b"], "max": 1}], None)
    assert normalize_tools([{"name": "f", "enum": ["b", "a"], "max": 1}], first)[0]["enum"] == [
        "b",
        "a",
    ]
    assert dumps(normalize_tools([{"name": "f", "enum": ["a", "b"], "max": 1.0}], first)) == (
        '[{"name": "f", "enum": ["a", "b"], "max": 1.0}]'
    )


def test_normalising_never_mutates_or_shares_the_callers_dicts() -> None:
    tools = claude_code_tools()
    before = copy.deepcopy(tools)
    result = normalize_tools(list(reversed(tools)), _without_markers(tools))
    assert tools == before
    assert [dumps(tool) for tool in tools] == [dumps(tool) for tool in before]
    result[0]["input_schema"]["properties"]["command"]["type"] = "changed"
    assert tools[0]["input_schema"]["properties"]["command"]["type"] == "string"


def test_first_turn_and_an_unchanged_order_keep_the_arrival_order() -> None:
    tools = claude_code_tools()
    assert tool_names(normalize_tools(tools, None)) == tool_names(tools)
    assert tool_names(normalize_tools(tools, _without_markers(tools))) == tool_names(tools)


def test_a_shuffled_tool_list_gets_the_first_seen_order_back_byte_for_byte() -> None:
    first = normalize_tools(claude_code_tools(), None)
    shuffled = [claude_code_tools()[i] for i in (2, 0, 3, 1)]
    assert dumps(normalize_tools(shuffled, _without_markers(first))) != dumps(shuffled)
    assert tool_names(normalize_tools(shuffled, _without_markers(first))) == tool_names(first)


def test_cache_control_stays_on_the_last_position_when_the_order_is_restored() -> None:
    first = normalize_tools(claude_code_tools(), None)
    shuffled = [claude_code_tools()[i] for i in (3, 0, 1, 2)]
    for tool in shuffled:
        tool.pop("cache_control", None)
    shuffled[-1]["cache_control"] = {"type": "ephemeral"}
    assert dumps(normalize_tools(shuffled, _without_markers(first))) == dumps(first)


def test_new_tools_follow_the_known_ones_in_their_arrival_order() -> None:
    bash, read, todo, grep = claude_code_tools()
    mcp_a = {"name": "mcp__github__get_issue", "input_schema": {"type": "object"}}
    mcp_b = {"name": "mcp__github__list_prs", "input_schema": {"type": "object"}}
    result = normalize_tools([mcp_b, read, bash, mcp_a, grep, todo], [bash, read, todo, grep])
    assert tool_names(result) == [
        "Bash", "Read", "TodoWrite", "Grep", "mcp__github__list_prs", "mcp__github__get_issue",
    ]  # fmt: skip


def test_a_removed_tool_leaves_the_others_in_their_previous_order() -> None:
    bash, read, todo, _ = claude_code_tools()
    result = normalize_tools([todo, bash, read], [bash, read, todo, claude_code_tools()[3]])
    assert tool_names(result) == ["Bash", "Read", "TodoWrite"]


def test_a_tool_without_a_name_is_refused_with_the_fields_it_could_use() -> None:
    with pytest.raises(InvalidMessagesError, match=r"tools\[1\] has no name.*function\.name"):
        normalize_tools([claude_code_tools()[0], {"description": "nameless"}], None)
    with pytest.raises(InvalidMessagesError, match="tools must be a list"):
        tool_names({"name": "Bash"})  # type: ignore[arg-type]


# --- volatile content ------------------------------------------------------------------------


def test_the_claude_code_system_prompt_has_its_env_lines_date_and_git_status_found() -> None:
    found = find_volatile(claude_code_system())
    assert {span.block_index for span in found} == {1}
    assert [(span.kind, span.text) for span in found if span.kind != "git"] == [
        ("environment", "Working directory: /Users/dana/src/shop"),
        ("environment", "Is directory a git repo: Yes"),
        ("environment", "Platform: darwin"),
        ("environment", "OS Version: Darwin 24.6.0"),
        ("date", "2026-11-25"),
    ]
    (git,) = [span for span in found if span.kind == "git"]
    assert git.text.startswith("gitStatus: This is the git status")
    assert git.text.endswith("9c3b7d1 Add cart service")
    assert all(CLAUDE_CODE_PROMPT[s.start : s.end] == s.text for s in found)


def test_stable_prose_model_ids_cutoffs_and_numbered_steps_are_not_volatile() -> None:
    text = (
        "The exact model ID is claude-sonnet-4-5-20250929.\n"
        "Assistant knowledge cutoff is January 2025.\n"
        "Step 1: read the file. Step 2: edit it. Use at most 3 tool calls in parallel.\n"
        "Files to avoid:\n- .env\n- secrets.json\n"
    )
    assert find_volatile(text) == []


@pytest.mark.parametrize(
    ("text", "kind", "span"),
    [
        ("Today's date is 2026-11-25.", "date", "2026-11-25"),
        ("Last updated Nov 25, 2026 by the bot", "date", "Nov 25, 2026"),
        ("It is Wednesday, November 25th, 2026.", "date", "Wednesday, November 25th, 2026"),
        ("Generated 25 November 2026", "date", "25 November 2026"),
        ("Due 11/25/2026", "date", "11/25/2026"),
        ("Started at 2026-11-25T14:03:22.123Z", "date", "2026-11-25T14:03:22.123Z"),
        ("The current time is 14:03:22 UTC.", "time", "14:03:22 UTC"),
        ("Meeting at 9:30 pm", "time", "9:30 pm"),
        ("Session 3f2b8c1e-9a4d-4c7b-8e2f-1a6d5c4b3e2f started", "uuid",
         "3f2b8c1e-9a4d-4c7b-8e2f-1a6d5c4b3e2f"),
        ("Snapshot a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 loaded", "hex",
         "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"),
        ("This is turn 12 of the session", "counter", "turn 12"),
        ("You are on step 3 of 10.", "counter", "step 3 of 10"),
        ("You have 37 turns remaining.", "counter", "37 turns remaining"),
    ],
)  # fmt: skip
def test_inline_volatile_forms_are_found(text: str, kind: str, span: str) -> None:
    assert [(found.kind, found.text) for found in find_volatile(text)] == [(kind, span)]


def test_a_directory_listing_is_found_as_one_span() -> None:
    listing = "src/\nsrc/app.py\nsrc/cart.py\ntests/\ntests/test_cart.py\npyproject.toml"
    tree = "shop\n├── src\n│   ├── app\n│   └── cart\n└── tests\n    └── unit"
    text = (
        f"# Current Working Directory (/Users/dana/src/shop) Files\n{listing}\n\nDone.\n\n{tree}\n"
    )
    found = find_volatile(text)
    assert [(span.kind, span.text) for span in found] == [
        ("listing", listing),
        ("listing", tree.split("\n", 1)[1]),
    ]


def test_volatile_search_is_linear_on_pathological_input() -> None:
    hostile = [
        "1" * 200_000, "a1" * 100_000, "1:" * 100_000, "Nov 1, " * 30_000,
        "turn " * 40_000, "- a.b\n" * 40_000, "│ " * 100_000, "<env>\n" * 40_000,
        "2026-11-25T" * 20_000, " " * 200_000 + "x", "Today's date: 2026-11-25\n" * 20_000,
        "<a>\n" * 30_000 + "at 10:30\n" + "</a>\n" * 30_000,
    ]  # fmt: skip
    started = time.perf_counter()
    for text in hostile:
        move_volatile_to_end(text, find_volatile(text))
    assert time.perf_counter() - started < 5.0


# --- diff ----------------------------------------------------------------------------------------


def test_an_unchanged_system_prompt_has_no_changed_volatile_content() -> None:
    assert diff_volatile(claude_code_system(), claude_code_system()) == []


def test_the_next_day_only_the_date_is_reported_changed() -> None:
    tomorrow = claude_code_system(CLAUDE_CODE_PROMPT.replace("2026-11-25", "2026-11-26"))
    (changed,) = diff_volatile(claude_code_system(), tomorrow)
    assert (changed.kind, changed.text, changed.block_index) == ("date", "2026-11-26", 1)


def test_a_new_commit_reports_the_git_status_changed() -> None:
    committed = CLAUDE_CODE_PROMPT.replace(
        "Recent commits:\n", "Recent commits:\n5d6e7f8 Fix rounding\n"
    )
    assert [span.kind for span in diff_volatile(CLAUDE_CODE_PROMPT, committed)] == ["git"]


# --- moving (opt-in) -----------------------------------------------------------------------------


def test_moving_puts_volatile_lines_last_and_keeps_every_other_line_in_order() -> None:
    env = CLAUDE_CODE_PROMPT[
        CLAUDE_CODE_PROMPT.index("<env>") : CLAUDE_CODE_PROMPT.index("You are powered")
    ]
    git = CLAUDE_CODE_PROMPT[CLAUDE_CODE_PROMPT.index("gitStatus:") :]
    expected = CLAUDE_CODE_PROMPT.replace(env, "").replace(git, "") + env + git
    assert move_volatile_to_end(CLAUDE_CODE_PROMPT, find_volatile(CLAUDE_CODE_PROMPT)) == expected


def test_moving_lets_two_days_in_two_repos_share_the_system_prefix() -> None:
    today, tomorrow = claude_code_system(), claude_code_system(next_day_in_another_repo())
    assert dumps(today) != dumps(tomorrow)
    moved_today = move_volatile_to_end(today, find_volatile(today))
    moved_tomorrow = move_volatile_to_end(tomorrow, find_volatile(tomorrow))
    assert isinstance(moved_today, list) and isinstance(moved_tomorrow, list)
    assert dumps(moved_today[:-1]) == dumps(moved_tomorrow[:-1])
    assert dumps(moved_today[-1]) != dumps(moved_tomorrow[-1])


def test_moving_a_block_list_adds_one_unmarked_final_block_and_mutates_nothing() -> None:
    system = claude_code_system()
    before = copy.deepcopy(system)
    moved = move_volatile_to_end(system, find_volatile(system))
    assert system == before
    assert isinstance(moved, list) and len(moved) == 3
    assert moved[0] == system[0]
    assert moved[1]["cache_control"] == {"type": "ephemeral"}
    assert moved[2] == {"type": "text", "text": moved[2]["text"]}
    assert moved[2]["text"].startswith("<env>\nWorking directory:")


def test_moving_is_deterministic_and_idempotent() -> None:
    once = move_volatile_to_end(claude_code_system(), find_volatile(claude_code_system()))
    again = move_volatile_to_end(claude_code_system(), find_volatile(claude_code_system()))
    assert dumps(once) == dumps(again)
    text = move_volatile_to_end(CLAUDE_CODE_PROMPT, find_volatile(CLAUDE_CODE_PROMPT))
    assert move_volatile_to_end(text, find_volatile(text)) == text


def test_a_block_left_empty_is_dropped_and_its_breakpoint_passes_to_the_final_block() -> None:
    system = [
        {
            "type": "text",
            "text": "Today's date: 2026-11-25\n",
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "text", "text": "You are a helpful assistant."},
    ]
    assert move_volatile_to_end(system, find_volatile(system)) == [
        {"type": "text", "text": "You are a helpful assistant."},
        {
            "type": "text",
            "text": "Today's date: 2026-11-25",
            "cache_control": {"type": "ephemeral"},
        },
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Date: 2026-11-25\nBe brief.", "Be brief.\nDate: 2026-11-25"),
        ("Date: 2026-11-25\nBe brief.\n", "Be brief.\nDate: 2026-11-25\n"),
        ("Be brief.\nDate: 2026-11-25\nBe kind.", "Be brief.\nBe kind.\nDate: 2026-11-25"),
    ],
)
def test_a_moved_string_prompt_keeps_its_final_newline_convention(text: str, expected: str) -> None:
    assert move_volatile_to_end(text, find_volatile(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x\n<a>\n<b>\nat 10:30\n</b>\n</a>\ny", "x\ny\n<a>\n<b>\nat 10:30\n</b>\n</a>"),
        ("<a>\n<b>\nat 10:30\n</b>\nkeep\n</a>\n", "<a>\nkeep\n</a>\n<b>\nat 10:30\n</b>\n"),
        ("<a>\nat 10:30\n<b>\n</a>\n", "<a>\n<b>\n</a>\nat 10:30\n"),
    ],
)
def test_an_element_moves_whole_only_when_all_its_inner_lines_move(
    text: str, expected: str
) -> None:
    assert move_volatile_to_end(text, find_volatile(text)) == expected


def test_nothing_found_leaves_the_system_prompt_as_it_is() -> None:
    system = claude_code_system("You are a helpful assistant.")
    assert move_volatile_to_end(system, []) is system


def test_a_span_found_on_another_prompt_is_refused() -> None:
    stale = Volatile("date", 10, 20, "2026-11-25", 1)
    with pytest.raises(HeadroomError, match="find_volatile returned for this very prompt"):
        move_volatile_to_end(claude_code_system("Be brief."), [stale])


# --- properties --------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
TOOLS = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=8), "description": st.text(max_size=12),
         "input_schema": st.dictionaries(st.text(max_size=6), JSON, max_size=4)}
    ),
    max_size=5,
    unique_by=lambda tool: tool["name"],
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(tools=TOOLS, seed=st.integers(0, 2**32 - 1))
def test_normalising_keeps_the_first_bytes_whatever_the_key_and_tool_order(
    tools: list[dict[str, Any]], seed: int
) -> None:
    rng = random.Random(seed)
    first = normalize_tools(tools, None)
    assert dumps(first) == dumps(tools)
    assert dumps(normalize_tools(first, _without_markers(first))) == dumps(first)
    shuffled = [_shuffle_keys(tool, rng) for tool in rng.sample(tools, len(tools))]
    assert dumps(normalize_tools(shuffled, _without_markers(first))) == dumps(first)


def _without_markers(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What request.py keeps of a turn's forwarded tools for the next turn."""
    return [{k: v for k, v in tool.items() if k != "cache_control"} for tool in tools]


def _shuffle_keys(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: _shuffle_keys(value[key], rng) for key in keys}
    if isinstance(value, list):
        return [_shuffle_keys(item, rng) for item in value]
    return value


def _reverse_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reverse_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(item) for item in value]
    return value
