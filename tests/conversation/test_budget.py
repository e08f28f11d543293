"""Trimming a conversation to a context budget: stubs for old tool results, never an orphan."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import markers, tokens
from headroom.conversation.budget import Shape, Trim, trim_to_budget
from headroom.errors import ConfigError
from headroom.store.memory import MemoryStore

SYSTEM: list[dict[str, Any]] = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
    {"type": "text", "text": "You are an interactive CLI tool that helps users with software "
     "engineering tasks.", "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "gitStatus: clean", "cache_control": {"type": "ephemeral"}},
]  # fmt: skip
TOOLS: list[dict[str, Any]] = [
    {"name": "Bash", "description": "Run a shell command.", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
    {"name": "Read", "description": "Read a file.", "input_schema": {
        "type": "object", "properties": {"file_path": {"type": "string"}},
        "required": ["file_path"]}},
]  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One tool call and its result, or (when tool is None) a new user question."""

    text: str
    tool: str | None = "Bash"
    is_error: bool = False


def listing(name: str, lines: int = 40) -> str:
    """A directory listing of 731 tokens (40 lines)."""
    return "\n".join(f"-rw-r--r-- 1 dev dev {n * 37} {name}_{n}.txt" for n in range(lines))


def anthropic(steps: list[Step]) -> dict[str, Any]:
    """A request body as Claude Code sends it, with a breakpoint on the newest tool result."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Tidy up the data folder."}]}
    ]
    for n, step in enumerate(steps):
        if step.tool is None:
            if messages[-1]["role"] == "user":
                messages.append(
                    {"role": "assistant", "content": [{"type": "text", "text": "Done."}]}
                )
            messages.append({"role": "user", "content": [{"type": "text", "text": step.text}]})
            continue
        tool_input = (
            {"command": f"ls data/{n}"} if step.tool == "Bash" else {"file_path": f"/d/{n}"}
        )
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": f"toolu_{n:02d}", "name": step.tool, "input": tool_input},
        ]})  # fmt: skip
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": f"toolu_{n:02d}",
            "content": step.text,
        }
        if step.is_error:
            result["is_error"] = True
        messages.append({"role": "user", "content": [result]})
    results = [m["content"][0] for m in messages if m["content"][0]["type"] == "tool_result"]
    for newest in results[-1:]:
        newest["cache_control"] = {"type": "ephemeral"}
    return {"model": "claude-sonnet-4-5", "max_tokens": 32000, "system": SYSTEM, "tools": TOOLS,
            "messages": messages}  # fmt: skip


def openai(steps: list[Step]) -> dict[str, Any]:
    """The same conversation in OpenAI chat shape."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "\n".join(block["text"] for block in SYSTEM)},
        {"role": "user", "content": "Tidy up the data folder."},
    ]
    for n, step in enumerate(steps):
        if step.tool is None:
            if messages[-1]["role"] != "assistant":
                messages.append({"role": "assistant", "content": "Done."})
            messages.append({"role": "user", "content": step.text})
            continue
        arguments = json.dumps({"command": f"ls data/{n}"})
        messages.append({"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": f"call_{n:02d}", "type": "function",
             "function": {"name": step.tool, "arguments": arguments}},
        ]})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": f"call_{n:02d}", "content": step.text})
    return {"model": "gpt-4.1", "messages": messages}


def build(shape: Shape, steps: list[Step]) -> list[dict[str, Any]]:
    body = anthropic(steps) if shape == "anthropic" else openai(steps)
    messages: list[dict[str, Any]] = body["messages"]
    return messages


def trim(messages: list[dict[str, Any]], shape: Shape, store: MemoryStore, **kwargs: Any) -> Trim:
    options: dict[str, Any] = {"budget": 10_000, "estimate": 12_000, "query": ""} | kwargs
    return trim_to_budget(messages, shape=shape, store_put=store.put, **options)


def pairs(messages: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Tool call ids and tool result ids, in order, for either shape."""
    uses: list[str] = []
    results: list[str] = []
    for message in messages:
        uses += [call["id"] for call in message.get("tool_calls", [])]
        if message["role"] == "tool":
            results.append(message["tool_call_id"])
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block["type"] == "tool_use":
                uses.append(block["id"])
            if block["type"] == "tool_result":
                results.append(block["tool_use_id"])
    return uses, results


def stubbed_steps(result: Trim, shape: Shape) -> list[int]:
    """Which steps (by their tool call number) were stubbed; step n's result is message
    2 + 2n (Anthropic) or 3 + 2n (OpenAI, after its system message)."""
    offset = 2 if shape == "anthropic" else 3
    return [(stub.message - offset) // 2 for stub in result.stubbed]


BOTH: list[Shape] = ["anthropic", "openai"]
TEN = [Step(listing(f"f{n}")) for n in range(10)]


@pytest.mark.parametrize("shape", BOTH)
def test_under_budget_returns_the_same_list_and_stores_nothing(shape: Shape) -> None:
    store = MemoryStore()
    messages = build(shape, TEN)
    result = trim(messages, shape, store, estimate=10_000)
    assert result == Trim(messages=messages, stubbed=[], freed=0)
    assert result.messages is messages
    assert store.stats().keys == 0


@pytest.mark.parametrize("shape", BOTH)
def test_slightly_over_budget_frees_one_batch_of_a_fifth_of_the_budget(shape: Shape) -> None:
    result = trim(build(shape, TEN), shape, MemoryStore(), estimate=10_001)
    assert result.freed >= 2_000
    assert len(result.stubbed) == 3  # each 731-token result frees about 700: no more than needed


@pytest.mark.parametrize("shape", BOTH)
def test_far_over_budget_frees_at_least_the_excess(shape: Shape) -> None:
    result = trim(build(shape, TEN), shape, MemoryStore(), estimate=14_000, clear_at_least=100)
    assert result.freed >= 4_000
    assert len(result.stubbed) == 6


@pytest.mark.parametrize("shape", BOTH)
def test_freed_is_originals_minus_stubs_and_stubs_report_original_tokens(shape: Shape) -> None:
    messages = build(shape, TEN)
    result = trim(messages, shape, MemoryStore())
    freed = 0
    for stub in result.stubbed:
        before, after = (_content(m, stub.message, stub.block) for m in (messages, result.messages))
        assert stub.tokens == tokens.count(before)
        freed += stub.tokens - tokens.count(after)
    assert result.freed == freed


def _content(messages: list[dict[str, Any]], message: int, block: int) -> str:
    holder = messages[message] if block == -1 else messages[message]["content"][block]
    content: str = holder["content"]
    return content


@pytest.mark.parametrize("shape", BOTH)
def test_every_tool_call_keeps_its_result_after_a_deep_trim(shape: Shape) -> None:
    messages = build(shape, TEN)
    result = trim(messages, shape, MemoryStore(), estimate=100_000, keep_last_turns=1)
    assert len(result.stubbed) == 9
    assert pairs(result.messages) == pairs(messages)
    assert all(
        r is m for r, m in zip(result.messages, messages, strict=True) if m["role"] == "assistant"
    )


@pytest.mark.parametrize("shape", BOTH)
def test_system_first_user_and_last_turns_are_the_callers_own_objects(shape: Shape) -> None:
    messages = build(shape, [*TEN[:8], Step("Now delete the empty ones.", tool=None), *TEN[8:]])
    result = trim(messages, shape, MemoryStore(), estimate=100_000, keep_last_turns=3)
    kept_from = len(messages) - 5  # the question, then two tool calls and their results
    assert "Now delete the empty ones." in str(messages[kept_from]["content"])
    assert result.messages[kept_from - 2] is not messages[kept_from - 2]  # the result before
    assert all(result.messages[i] is messages[i] for i in range(kept_from, len(messages)))
    first_user = 0 if shape == "anthropic" else 1
    assert all(result.messages[i] is messages[i] for i in range(first_user + 1))
    assert len(result.stubbed) == 8


@pytest.mark.parametrize("shape", BOTH)
def test_the_callers_messages_are_not_changed(shape: Shape) -> None:
    messages = build(shape, TEN)
    before = copy.deepcopy(messages)
    trim(messages, shape, MemoryStore(), estimate=100_000)
    assert messages == before


@pytest.mark.parametrize("shape", BOTH)
def test_results_with_errors_outlive_newer_plain_ones(shape: Shape) -> None:
    failing = "Traceback (most recent call last):\n" + listing("t")
    steps = [Step(failing), Step(listing("x") + "\nmake: *** [all] Error 2"), *TEN[2:]]
    result = trim(build(shape, steps), shape, MemoryStore())
    assert stubbed_steps(result, shape) == [2, 3, 4]
    plain = trim(build(shape, TEN), shape, MemoryStore())
    assert stubbed_steps(plain, shape) == [0, 1, 2]


def test_an_is_error_flag_marks_a_result_as_an_error_without_error_lines() -> None:
    steps = [Step(listing("x"), is_error=True), *TEN[1:]]
    result = trim(build("anthropic", steps), "anthropic", MemoryStore())
    assert stubbed_steps(result, "anthropic") == [1, 2, 3]


@pytest.mark.parametrize("shape", BOTH)
def test_results_relevant_to_the_question_outlive_irrelevant_ones(shape: Shape) -> None:
    config = "\n".join(f"retry_timeout_{n} = {n * 5}  # seconds before the uploader retries"
                       for n in range(200))  # fmt: skip
    question = "Which uploader timeout makes the retries slow?"
    messages = build(shape, [Step(config), *TEN[1:], Step(question, tool=None)])
    result = trim(messages, shape, MemoryStore(), query=question)
    assert stubbed_steps(result, shape) == [1, 2, 3]
    unaware = trim(messages, shape, MemoryStore(), query="")
    assert stubbed_steps(unaware, shape) == [0]


@pytest.mark.parametrize("shape", BOTH)
def test_a_stub_is_one_marker_line_whose_key_retrieves_the_exact_original(shape: Shape) -> None:
    store = MemoryStore()
    original = "ERROR: disk full\n" + listing("log") + "\n"
    messages = build(shape, [Step(original, is_error=True), *TEN[1:]])
    result = trim(messages, shape, store, estimate=100_000)
    stub = result.stubbed[0]
    text = _content(result.messages, stub.message, stub.block)
    assert markers.is_marker(text) and "\n" not in text
    assert markers.keys_in(text) == [stub.key]
    assert "1 error line" in text and "context budget" in text
    assert store.get(stub.key) == original


def test_block_list_content_keeps_its_images_and_stores_the_joined_text() -> None:
    store = MemoryStore()
    messages = build("anthropic", TEN)
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
    }
    messages[2]["content"][0]["content"] = [
        {"type": "text", "text": listing("a")},
        image,
        {"type": "text", "text": listing("b")},
    ]
    result = trim(messages, "anthropic", store, estimate=100_000)
    content = result.messages[2]["content"][0]["content"]
    assert [block["type"] for block in content] == ["text", "image"]
    assert content[1] is image
    assert store.get(markers.keys_in(content[0]["text"])[0]) == listing("a") + "\n" + listing("b")


@pytest.mark.parametrize("shape", BOTH)
def test_both_shapes_stub_the_same_results(shape: Shape) -> None:
    steps = [Step(listing(f"g{n}", 50 * (n % 4 + 1))) for n in range(10)]
    result = trim(build(shape, steps), shape, MemoryStore())
    reference = trim(build("anthropic", steps), "anthropic", MemoryStore())
    assert stubbed_steps(result, shape) == stubbed_steps(reference, "anthropic")
    assert [s.key for s in result.stubbed] == [s.key for s in reference.stubbed]


@pytest.mark.parametrize("shape", BOTH)
def test_a_second_trim_does_not_stub_stubs_and_falls_short_quietly(shape: Shape) -> None:
    first = trim(build(shape, TEN), shape, MemoryStore(), estimate=100_000)
    assert 0 < first.freed < 90_000
    again = trim(first.messages, shape, MemoryStore(), estimate=100_000)
    assert again.stubbed == [] and again.messages is first.messages


@pytest.mark.parametrize("shape", BOTH)
def test_the_same_input_gives_the_same_trim(shape: Shape) -> None:
    messages = build(shape, TEN)
    assert trim(messages, shape, MemoryStore()) == trim(messages, shape, MemoryStore())


@pytest.mark.parametrize(
    "options",
    [
        {"shape": "gemini"},
        {"budget": 0},
        {"estimate": -1},
        {"keep_last_turns": -1},
        {"clear_at_least": -5},
    ],
)
def test_unusable_arguments_raise_config_error(options: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"shape": "anthropic", "budget": 100, "estimate": 10} | options
    with pytest.raises(ConfigError):
        trim_to_budget(build("anthropic", TEN), store_put=MemoryStore().put, query="", **arguments)


step = st.one_of(
    st.builds(Step, st.integers(0, 60).map(lambda n: listing("h", n)),
              st.sampled_from(["Bash", "Read"]), st.booleans()),
    st.builds(Step, st.text("ab \nE", max_size=200), st.just("Bash"), st.booleans()),
    st.builds(Step, st.sampled_from(["go on", "why?"]), st.none()),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from(BOTH),
    steps=st.lists(step, max_size=14),
    keep=st.integers(0, 5),
    budget=st.integers(1, 3_000),
    over=st.integers(0, 20_000),
)
def test_random_conversations_keep_pairs_and_protected_messages(
    shape: Shape, steps: list[Step], keep: int, budget: int, over: int
) -> None:
    messages = build(shape, steps)
    result = trim(messages, shape, MemoryStore(), budget=budget, estimate=budget + over,
                  keep_last_turns=keep)  # fmt: skip
    assert pairs(result.messages) == pairs(messages)
    assert len(result.messages) == len(messages)
    changed = [
        i for i, (a, b) in enumerate(zip(messages, result.messages, strict=True)) if a is not b
    ]
    assert changed == sorted({stub.message for stub in result.stubbed})
    client_side = [i for i, m in enumerate(messages) if m["role"] in ("user", "tool")]
    firsts = [i for i in client_side if i - 1 not in client_side]
    protected_from = firsts[max(len(firsts) - keep, 0)] if keep else len(messages)
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    assert all(i < protected_from and i != first_user for i in changed)
    assert all(messages[i]["role"] in ("user", "tool") for i in changed)
