"""OpenAI Responses conversations (`input` items): where tool outputs sit and how to put them
back.

`input` is a list of items: messages `{role, content}` (a string or a list of `input_text` /
`output_text` parts), tool calls (`function_call` with JSON `arguments`, `custom_tool_call`
with a free-form `input`) and their outputs (`function_call_output`, `custom_tool_call_output`)
matched by `call_id`. An output is a string, one payload at (item, -1), or a list of content
parts, each text part one payload at (item, part). The call's arguments are the hints.

`check`, `outputs`, `tool_inputs`, `user_texts` and `set_text` are what `headroom.messages`
asks of a shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from headroom.errors import InvalidMessagesError

CALL_TYPES = ("function_call", "custom_tool_call")
OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")
ITEM_TYPES = frozenset(
    (
        *CALL_TYPES,
        *OUTPUT_TYPES,
        "reasoning",
        "item_reference",
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "local_shell_call",
        "local_shell_call_output",
        "image_generation_call",
        "code_interpreter_call",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
    )
)
"""Item types only a Responses input has (a `message` item may look like a chat message)."""
PART_TYPES = frozenset(("input_text", "output_text", "input_image", "input_file"))
"""Content part types only a Responses input has."""
_TEXT_PARTS = ("input_text", "output_text")

Output = tuple[tuple[int, ...], str, str | None, Any]
"""(location, text, tool name, the tool call's parsed arguments)."""


def is_responses(item: Mapping[str, Any]) -> bool:
    """Whether an input item can only be a Responses item."""
    if item.get("type") in ITEM_TYPES:
        return True
    content = item.get("content")
    return isinstance(content, list) and any(
        isinstance(part, Mapping) and part.get("type") in PART_TYPES for part in content
    )


def check(items: Sequence[Any]) -> None:
    """Raise InvalidMessagesError, naming the place, for anything that cannot be read."""
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidMessagesError(
                f"input[{index}] must be an item object (a message, a function_call, a "
                f"function_call_output, ...), got {type(item).__name__}"
            )
        content = item.get("content")
        if "role" in item and not isinstance(content, str | list):
            raise InvalidMessagesError(
                f"input[{index}].content must be a string or a list of content parts, "
                f"got {type(content).__name__}"
            )
        output = item.get("output")
        if item.get("type") in OUTPUT_TYPES and not isinstance(output, str | list):
            raise InvalidMessagesError(
                f"input[{index}].output must be a string or a list of content parts, "
                f"got {type(output).__name__}"
            )
        for field in ("content", "output"):
            value = item.get(field)
            for number, part in enumerate(value if isinstance(value, list) else []):
                if not isinstance(part, Mapping):
                    raise InvalidMessagesError(
                        f"input[{index}].{field}[{number}] must be an object with a 'type'"
                    )


def outputs(items: Sequence[Any]) -> list[Output]:
    """Every payload of the tool outputs, in order, with the call that asked for it."""
    calls = {
        str(item.get("call_id")): (str(item.get("name")), _input(item))
        for item in items
        if item.get("type") in CALL_TYPES
    }
    found: list[Output] = []
    for index, item in enumerate(items):
        if item.get("type") not in OUTPUT_TYPES:
            continue
        name, arguments = calls.get(str(item.get("call_id")), (None, None))
        output = item["output"]
        if isinstance(output, str):
            found.append(((index, -1), output, name, arguments))
            continue
        for number, part in enumerate(output):
            if part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
                found.append(((index, number), part["text"], name, arguments))
    return found


def tool_inputs(item: Mapping[str, Any]) -> list[Any]:
    """The parsed arguments of a tool call item; none for any other item."""
    return [_input(item)] if item.get("type") in CALL_TYPES else []


def user_texts(item: Mapping[str, Any]) -> list[str]:
    """The texts of a user message item."""
    if item.get("role") != "user":
        return []
    content = item.get("content")
    if isinstance(content, str):
        return [content]
    return [
        part["text"]
        for part in content or []
        if part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str)
    ]


def set_text(item: Any, path: tuple[int, ...], text: str) -> None:
    """Put `text` at `path` ((-1,) for a string output, (part,) for a list) of a copied item."""
    if path[0] == -1:
        item["output"] = text
    else:
        item["output"][path[0]]["text"] = text


def system_text(body: Mapping[str, Any]) -> str | None:
    """The request's `instructions` and the texts of its system and developer messages."""
    items = body.get("input")
    texts = [body.get("instructions")]
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and item.get("role") in ("system", "developer"):
            content = item.get("content")
            parts = content if isinstance(content, list) else [{"text": content}]
            texts += [part.get("text") for part in parts if isinstance(part, Mapping)]
    return "\n".join(text for text in texts if isinstance(text, str)) or None


def _input(item: Mapping[str, Any]) -> Any:
    """A call's input: `arguments` parsed from JSON, or a custom tool's raw `input`."""
    raw = item.get("arguments", item.get("input"))
    if item.get("type") != "function_call" or not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return None
