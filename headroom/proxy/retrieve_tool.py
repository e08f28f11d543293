"""The `headroom_retrieve` tool the proxy offers a model, its calls and their answers.

When a request carries tools, the proxy adds one more, last: `headroom_retrieve {key, lines?,
grep?}`. Its definition is a constant per provider, written in the canonical form the
conversation layer gives tools (keys sorted), so its bytes are the same on every turn of
every session. A client that already exposes headroom's retrieve (the MCP server's tool,
which Claude Code names `mcp__headroom__headroom_retrieve`, or a tool of that very name)
gets no second one.

A call is answered as `headroom.api.retrieve_from` answers: the exact original, a
`lines="A-B"` slice, or the lines matching a `grep` regular expression, numbered. What
cannot be answered (an unknown or expired key, a bad range or pattern, a failing store) is
an error result the model reads, never an HTTP error.

One answer carries at most `MAX_ANSWER_CHARS` characters, cut at a line's end, with a note
naming the lines shown and how to ask for the rest. A whole multi-megabyte original would
overflow the model's context: the continuation would fail upstream and the client would get
an error for a call it never made. The cap matches what agents' own file readers return
(Claude Code's Read stops at about 25,000 tokens), and the model has `lines` and `grep`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from headroom.api import retrieve_from
from headroom.conversation import stable
from headroom.errors import ConfigError, StoreError
from headroom.messages import RETRIEVE_TOOL, is_retrieve_tool
from headroom.store.base import Store

NAME = RETRIEVE_TOOL
MAX_ANSWER_CHARS = 100_000
"""The most one answer carries (about 25,000 tokens); the rest is a `lines` call away."""
DESCRIPTION = (
    "Get back content that headroom compressed. A compressed tool result starts with "
    "`[headroom KEY: ...]`, and each elision inside it names the original lines "
    "(`lines=A-B`) or a part stored under its own key (`key=KEY`). Call this with that key "
    "to read the exact original; add `lines` for a slice or `grep` for the matching lines."
)
SCHEMA: dict[str, Any] = {
    "properties": {
        "grep": {
            "description": "A regular expression: only the lines that match, numbered.",
            "type": "string",
        },
        "key": {
            "description": "The key a `[headroom KEY: ...]` header or a `key=KEY` elision names.",
            "type": "string",
        },
        "lines": {
            "description": "Lines A-B of the original (1-based, inclusive), e.g. 120-180.",
            "type": "string",
        },
    },
    "required": ["key"],
    "type": "object",
}
ANTHROPIC_TOOL: dict[str, Any] = {"description": DESCRIPTION, "input_schema": SCHEMA, "name": NAME}
OPENAI_TOOL: dict[str, Any] = {
    "function": {"description": DESCRIPTION, "name": NAME, "parameters": SCHEMA},
    "type": "function",
}
RESPONSES_TOOL: dict[str, Any] = {
    "description": DESCRIPTION,
    "name": NAME,
    "parameters": SCHEMA,
    "strict": False,  # strict mode would make `lines` and `grep` required
    "type": "function",
}
GEMINI_TOOL: dict[str, Any] = {
    "functionDeclarations": [
        {
            "description": DESCRIPTION,
            "name": NAME,
            "parameters": {
                "properties": {
                    name: {**field, "type": "STRING"}
                    for name, field in SCHEMA["properties"].items()
                },
                "required": SCHEMA["required"],
                "type": "OBJECT",
            },
        }
    ]
}
"""Gemini declares functions in groups (`tools: [{functionDeclarations: [...]}]`) with an
OpenAPI-subset schema whose types are the API's enum names."""


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call of an assistant message."""

    id: str
    name: str
    arguments: Any
    """The call's input as the model wrote it (a JSON object when well formed)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the proxy answers to one retrieve call."""

    text: str
    error: bool

    @property
    def marked(self) -> str:
        """The text, marked as an error where it is one: a tool result for an API whose
        results carry no error flag."""
        return f"error: {self.text}" if self.error else self.text


def offer(tools: Any, tool: Mapping[str, Any]) -> list[Any] | None:
    """The client's tools with the retrieve tool last, or None when there is nothing to add
    it to or the client already exposes a retrieve tool."""
    if not isinstance(tools, list) or not tools:
        return None
    if any(is_retrieve_tool(name) for name in stable.tool_names(tools)):
        return None
    return [*tools, dict(tool)]


def answer(store: Store, arguments: Any) -> Answer:
    """The answer to one retrieve call with these arguments."""
    if not isinstance(arguments, Mapping):
        return Answer(f"{NAME} takes a JSON object: {{key, lines?, grep?}}", True)
    key = arguments.get("key")
    if not isinstance(key, str) or not key.strip():
        return Answer(
            f"{NAME} needs `key`: the 16 hex characters a `[headroom KEY: ...]` header or a "
            "`key=KEY` elision names",
            True,
        )
    lines, grep = arguments.get("lines"), arguments.get("grep")
    if lines is not None and not isinstance(lines, str | int):
        return Answer("`lines` must be a range written A-B, e.g. 120-180", True)
    if grep is not None and not isinstance(grep, str):
        return Answer("`grep` must be a regular expression, as a string", True)
    try:
        text = retrieve_from(store, key, str(lines) if lines else None, grep or None)
    except (ConfigError, StoreError) as exc:
        return Answer(str(exc), True)
    if text is None:
        return Answer(
            f"key {key.strip()} is unknown: use a key exactly as a `[headroom KEY: ...]` header "
            "or a `key=KEY` elision in this conversation names it",
            True,
        )
    if not text:
        asked = " and ".join(f"{n}={v!r}" for n, v in (("lines", lines), ("grep", grep)) if v)
        return Answer(f"no line of {key.strip()} matches {asked or 'the request'}", False)
    return Answer(_capped(text, _first_line(lines), bool(grep)), False)


def _first_line(lines: str | int | None) -> int:
    """The original's line number of a slice's first line (1 for the whole original)."""
    start = str(lines or "1").split("-", 1)[0].strip()
    return max(int(start), 1) if start.isdigit() else 1


def _capped(text: str, first: int, grepped: bool) -> str:
    """`text`, or its first lines up to MAX_ANSWER_CHARS and a note on how to read on."""
    if len(text) <= MAX_ANSWER_CHARS:
        return text
    end = text.rfind("\n", 0, MAX_ANSWER_CHARS + 1)
    size = f"{len(text):,} characters; one answer carries at most {MAX_ANSWER_CHARS:,}"
    if end <= 0:
        return (
            f"{text[:MAX_ANSWER_CHARS]}\n[headroom: the first {MAX_ANSWER_CHARS:,} characters "
            f"shown ({size}): the first line alone is longer, and lines and grep return whole lines]"
        )
    shown = text[:end]
    count, total = shown.count("\n") + 1, text.count("\n") + 1
    if grepped:
        how = "narrow the grep, or add lines to search one part of the original"
        return f"{shown}\n[headroom: {count} of {total} matching lines shown ({size}): {how}]"
    last, final = first + count - 1, first + total - 1
    how = f'call {NAME} again with lines="{last + 1}-{final}" for the rest, or grep'
    return f"{shown}\n[headroom: lines {first}-{last} of {first}-{final} shown ({size}): {how}]"
