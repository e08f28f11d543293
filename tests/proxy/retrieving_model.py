"""The fake upstreams' model when its name starts with `retrieve-`: a model that reads
headroom's markers and calls `headroom_retrieve` when the request offers it.

- `retrieve-lines`: when a tool result in the newest message carries a marker, a short text
  and a call `{key, lines: "N-N"}` for the last line of the original (the header says how
  many it has); given that call's result, text quoting its first line (`Retrieved: ...`).
- `retrieve-unknown`: the same, asking for a key no store holds.
- `retrieve-silent`: `retrieve-lines`, but the call comes without the short text.
- `retrieve-mixed`: the retrieve call and a client `Bash` call in one message.
- `retrieve-forever`: every retrieve result is met with the same call again.
- `retrieve-limited` (Anthropic's fake only): `retrieve-lines`, but a request carrying a
  retrieve result is answered with the API's 429.
- `retrieve-hanging` (Anthropic's fake only): `retrieve-lines`, but a request carrying a
  retrieve result is never answered (a stream stops after `message_start`) until the client
  leaves.

Otherwise it answers as the fakes always do: a `Bash` call while the conversation holds
fewer than two results of client tools, then `ANSWER`. Each fake turns a `Decision` into its
own API's shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

RETRIEVING = "retrieve-"
RETRIEVE = "headroom_retrieve"
LIMITED = "retrieve-limited"
HANGING = "retrieve-hanging"
ANSWER = "The answer is 42."
PIECES = ("The answer", " is", " 42.")
"""`ANSWER` as the fakes stream it."""
UNKNOWN_KEY = "0000000000000000"
LOOKING = "Let me read the original."
TOOLS = ("json", "email", "http")
_HEADER = re.compile(r"\[headroom ([0-9a-f]{16,64}): \w+, (\d+) lines")


@dataclass(frozen=True)
class Result:
    """A tool result in the newest message: the tool it answers, that call's input, its text."""

    tool: str | None
    input: Any
    text: str


@dataclass(frozen=True)
class View:
    """What the model reads of a conversation."""

    newest: list[Result]
    client_results: int
    """Results of client tools (not the retrieve tool) in the whole conversation."""
    calls: int
    """Tool calls made so far, of every tool."""


@dataclass(frozen=True)
class Decision:
    """The model's answer: a text, tool calls `(name, input)`, or both."""

    text: str | None
    calls: list[tuple[str, Any]] = field(default_factory=list)


def decide(model: str, view: View) -> Decision:
    retrieved = [r for r in view.newest if r.tool == RETRIEVE]
    if retrieved:
        if model == "retrieve-forever":
            return Decision(LOOKING, [(RETRIEVE, retrieved[-1].input)])
        return Decision(f"Retrieved: {retrieved[-1].text.split(chr(10), 1)[0]}")
    marked = next((m for r in view.newest if (m := _marker(r.text))), None)
    if marked is not None:
        key, lines = marked
        arguments = (
            {"key": UNKNOWN_KEY} if model == "retrieve-unknown" else {"key": key, "lines": lines}
        )
        calls: list[tuple[str, Any]] = [(RETRIEVE, arguments)]
        if model == "retrieve-mixed":
            calls.append(("Bash", {"command": f"grep -rn def {TOOLS[2]}"}))
        return Decision(None if model == "retrieve-silent" else LOOKING, calls)
    if view.client_results < 2:
        return Decision(None, [("Bash", {"command": f"grep -rn def {TOOLS[view.client_results]}"})])
    return Decision(ANSWER)


def _marker(text: str) -> tuple[str, str] | None:
    """The key a compressed payload names, and its original's last line as `N-N`."""
    header = _HEADER.match(text)
    if header is None:
        return None
    return header.group(1), f"{header.group(2)}-{header.group(2)}"
