"""Conversations in Anthropic or OpenAI chat shape, Gemini `contents` or OpenAI Responses
`input`: find the payloads, put them back.

`read` validates a message list, tells its shape, finds every tool result that may be
compressed (with hints from the tool call that produced it) and the latest user question.
`write` returns a copy of the messages with some payloads replaced; roles, ids, order and
every other field stay as they were. Nothing here knows how payloads are compressed.

The chat shapes are read here; Gemini and Responses each have a module (`messages_gemini`,
`messages_responses`) that says where its tool outputs sit, and this module turns what it
finds into payloads with the same hints, edit tracking and question as the chat shapes.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from headroom import messages_gemini, messages_responses
from headroom.errors import InvalidMessagesError
from headroom.router import Hints

Message = Mapping[str, Any]
Location = tuple[int, ...]
"""Where a payload sits: (message, block) or (message, block, inner block) indices;
a block index of -1 means the message's content is a plain string."""

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)
_PATH_KEYS = ("file_path", "path", "filePath", "filename", "notebook_path")
_EDIT_KEYS = ("old_string", "new_string", "edits", "content", "new_str", "file_text")
_RANGE_KEYS = ("offset", "limit", "start_line", "end_line", "line_range", "view_range")
PERSISTED_OUTPUT = "<persisted-output>"
RETRIEVE_TOOL = "headroom_retrieve"
"""headroom's retrieve tool (the proxy's, the MCP server's): its results are originals the
model asked for, never payloads."""


@dataclass(frozen=True, slots=True)
class Payload:
    """One tool result's text and what is known about where it came from."""

    location: Location
    text: str
    hints: Hints
    tool: str | None
    ranged_read: bool
    """The tool call asked for an explicit line range: the agent likely means to edit it."""
    edited: bool = False
    """The file read here was edited earlier in the session: the agent is working on it."""


@dataclass(frozen=True, slots=True)
class Conversation:
    shape: str
    """"anthropic", "openai", "gemini" or "responses"."""
    payloads: list[Payload]
    query: str


class Shape(Protocol):
    """A module that reads one more conversation shape (`messages_gemini`, ...)."""

    def check(self, messages: Sequence[Any]) -> None:
        """Raise InvalidMessagesError for anything that cannot be read."""

    def outputs(self, messages: Sequence[Any]) -> list[tuple[Location, str, str | None, Any]]:
        """(location, text, tool name, tool input) of every tool output, in order."""

    def tool_inputs(self, message: Mapping[str, Any]) -> list[Any]:
        """The inputs of the tool calls a message makes."""

    def user_texts(self, message: Mapping[str, Any]) -> list[str]:
        """The texts of a user message; none for any other message."""

    def set_text(self, message: Any, path: Location, text: str) -> None:
        """Put text at path (the location below the message) in a copied message."""


SHAPES: dict[str, Shape] = {"gemini": messages_gemini, "responses": messages_responses}


def read(messages: object) -> Conversation:
    """Validate messages and find their payloads and the latest user question."""
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise InvalidMessagesError(
            f"messages must be a list of message objects, got {type(messages).__name__}"
        )
    other = _other_shape(messages)
    if other is not None:
        return _read_other(messages, other)
    for index, message in enumerate(messages):
        _check_message(index, message)
    shape = _shape(messages)
    calls = _tool_calls(messages, shape)
    payloads: list[Payload] = []
    edited: set[str] = set()
    for index, message in enumerate(messages):
        for payload in _payloads(index, message, shape, calls):
            if payload.hints.path in edited:
                payload = replace(payload, edited=True)
            payloads.append(payload)
        edited |= _edited_paths(message, shape)
    return Conversation(shape=shape, payloads=payloads, query=_query(messages))


def write(messages: Sequence[Message], replacements: Mapping[Location, str]) -> list[Any]:
    """A copy of messages with the payloads at the given locations replaced."""
    result: list[Any] = list(messages)
    for location, text in replacements.items():
        index = location[0]
        if result[index] is messages[index]:
            result[index] = copy.deepcopy(messages[index])
        _set(result[index], location[1:], text)
    return result


def _other_shape(messages: Sequence[Any]) -> str | None:
    """Which of Gemini and Responses ("gemini", "responses") the messages are, when one of
    them has a form only that shape has; None for the chat shapes."""
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        if "parts" in message and "content" not in message:
            return "gemini"
        if messages_responses.is_responses(message):
            return "responses"
    return None


def _read_other(messages: Sequence[Any], shape: str) -> Conversation:
    module = SHAPES[shape]
    module.check(messages)
    payloads: list[Payload] = []
    edited: set[str] = set()
    seen = 0
    for location, text, tool, tool_input in module.outputs(messages):
        if tool is not None and is_retrieve_tool(tool):
            continue
        for message in messages[seen : location[0]]:
            edited |= _paths_written(module.tool_inputs(message))
        seen = max(seen, location[0])
        hints, ranged = _hints(tool_input)
        payloads.append(Payload(location, text, hints, tool, ranged, hints.path in edited))
    return Conversation(shape, payloads, _query(messages, module.user_texts))


def _check_message(index: int, message: object) -> None:
    if not isinstance(message, Mapping):
        raise InvalidMessagesError(
            f"messages[{index}] must be an object with 'role' and 'content', "
            f"got {type(message).__name__}"
        )
    role = message.get("role")
    if role not in _ROLES:
        raise InvalidMessagesError(
            f"messages[{index}].role is {role!r}; expected one of {', '.join(sorted(_ROLES))}"
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise InvalidMessagesError(
            f"messages[{index}].content must be a string or a list of content blocks, "
            f"got {type(content).__name__}"
        )
    for block_index, block in enumerate(content if isinstance(content, list) else []):
        if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
            raise InvalidMessagesError(
                f"messages[{index}].content[{block_index}] must be an object with a 'type'"
            )
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise InvalidMessagesError(
            f"messages[{index}].tool_calls must be a list, got {type(calls).__name__}"
        )
    for call_index, call in enumerate(calls or []):
        if not isinstance(call, Mapping) or not isinstance(call.get("function", {}), Mapping):
            raise InvalidMessagesError(
                f"messages[{index}].tool_calls[{call_index}] must be an object with a "
                "'function' object"
            )


def _shape(messages: Sequence[Message]) -> str:
    for message in messages:
        if message.get("role") in ("tool", "function") or "tool_calls" in message:
            return "openai"
        content = message.get("content")
        if isinstance(content, list) and any(
            block.get("type") in ("tool_use", "tool_result") for block in content
        ):
            return "anthropic"
        if isinstance(content, list) and any(
            block.get("type") in ("image_url", "input_audio") for block in content
        ):
            return "openai"
    return "anthropic"


def _tool_calls(messages: Sequence[Message], shape: str) -> dict[str, tuple[str, Any]]:
    """Tool call id -> (tool name, its input), from the assistant's turns."""
    calls: dict[str, tuple[str, Any]] = {}
    for message in messages:
        if message.get("role") != "assistant":
            continue
        if shape == "openai":
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                calls[str(call.get("id"))] = (str(function.get("name")), _arguments(function))
            continue
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_use":
                calls[str(block.get("id"))] = (str(block.get("name")), block.get("input"))
    return calls


def _arguments(function: Mapping[str, Any]) -> Any:
    raw = function.get("arguments")
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _payloads(
    index: int, message: Message, shape: str, calls: Mapping[str, tuple[str, Any]]
) -> list[Payload]:
    content = message.get("content")
    if shape == "openai":
        if message.get("role") not in ("tool", "function"):
            return []
        call = calls.get(str(message.get("tool_call_id")))
        return _texts((index,), content, call)
    found: list[Payload] = []
    for block_index, block in enumerate(content if isinstance(content, list) else []):
        if block.get("type") == "tool_result":
            call = calls.get(str(block.get("tool_use_id")))
            found += _texts((index, block_index), block.get("content"), call)
    return found


def _texts(where: Location, content: Any, call: tuple[str, Any] | None) -> list[Payload]:
    tool, tool_input = call if call else (None, None)
    if tool is not None and is_retrieve_tool(tool):
        return []
    hints, ranged = _hints(tool_input)
    if isinstance(content, str):
        return [Payload((*where, -1), content, hints, tool, ranged)] if _is_payload(content) else []
    found = []
    for inner, block in enumerate(content if isinstance(content, list) else []):
        if isinstance(block, Mapping) and block.get("type") == "text":
            text = block.get("text")
            if isinstance(text, str) and _is_payload(text):
                found.append(Payload((*where, inner), text, hints, tool, ranged))
    return found


def _is_payload(text: str) -> bool:
    """Whether a tool output is headroom's to compress: not Claude Code's preview of an output
    it saved to a file (`<persisted-output>`), which is cut down already and whose one line
    naming that file is what the model needs."""
    return not text.lstrip().startswith(PERSISTED_OUTPUT)


def is_retrieve_tool(name: str) -> bool:
    """Whether a tool is headroom's retrieve: by its own name, or as an MCP client names a
    server's tool (`mcp__headroom__headroom_retrieve`)."""
    return name == RETRIEVE_TOOL or name.endswith("__" + RETRIEVE_TOOL)


def _hints(tool_input: Any) -> tuple[Hints, bool]:
    if not isinstance(tool_input, Mapping):
        return Hints(), False
    command = tool_input.get("command") or tool_input.get("cmd")
    path = next((tool_input[k] for k in _PATH_KEYS if isinstance(tool_input.get(k), str)), None)
    ranged = any(tool_input.get(k) not in (None, "", 0) for k in _RANGE_KEYS)
    if isinstance(command, list):
        command = " ".join(str(part) for part in command)
    return Hints(command=command if isinstance(command, str) else None, path=path), ranged


def _edited_paths(message: Message, shape: str) -> set[str]:
    """Paths an assistant message's tool calls write to (Edit, Write and their kin)."""
    if message.get("role") != "assistant":
        return set()
    if shape == "openai":
        inputs = [
            _arguments(call.get("function") or {}) for call in message.get("tool_calls") or []
        ]
    else:
        content = message.get("content")
        inputs = [
            block.get("input")
            for block in (content if isinstance(content, list) else [])
            if block.get("type") == "tool_use"
        ]
    return _paths_written(inputs)


def _paths_written(inputs: Sequence[Any]) -> set[str]:
    paths = set()
    for tool_input in inputs:
        if isinstance(tool_input, Mapping) and any(key in tool_input for key in _EDIT_KEYS):
            path = _hints(tool_input)[0].path
            if path:
                paths.add(path)
    return paths


def _chat_user_texts(message: Message) -> list[str]:
    if message.get("role") != "user":
        return []
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    return [str(block.get("text", "")) for block in content or [] if block.get("type") == "text"]


def _query(
    messages: Sequence[Message], user_texts: Callable[[Message], list[str]] = _chat_user_texts
) -> str:
    """The latest user text that is not a tool result or an injected system reminder."""
    for message in reversed(messages):
        texts = user_texts(message)
        question = " ".join(_REMINDER.sub("", text).strip() for text in texts).strip()
        if question:
            return question
    return ""


def _set(message: Any, path: Location, text: str) -> None:
    """Replace the text at path (block indices below the message) in a copied message."""
    if "parts" in message and "content" not in message:
        SHAPES["gemini"].set_text(message, path, text)
        return
    if message.get("type") in messages_responses.OUTPUT_TYPES:
        SHAPES["responses"].set_text(message, path, text)
        return
    if path[-1] == -1:
        if len(path) == 1:
            message["content"] = text
        else:
            message["content"][path[0]]["content"] = text
        return
    container = message["content"]
    if len(path) == 2:
        container = container[path[0]]["content"]
    container[path[-1]]["text"] = text
