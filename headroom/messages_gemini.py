"""Gemini `generateContent` conversations: where tool outputs sit and how to put them back.

A conversation is `contents: [{role: user|model, parts: [...]}]`. A tool's output is a
`functionResponse` part whose `response` is any JSON object (`{"output": "..."}`,
`{"result": {...}}`, ...). Each large string in it is one payload; a large JSON value that is
not mostly a few large strings (a list of records, a nested result) is one payload as compact
JSON text, written back as a string. The `functionCall` of the model's turn that asked for it
(paired by `id`, else by name in order) gives the hints. The REST API takes camelCase and
snake_case field names alike, so both are read.

A payload's location is (content, part, *steps): each step indexes the keys (in order) or the
items on the way from `response` down to the payload. `check`, `outputs`, `tool_inputs`,
`user_texts` and `set_text` are what `headroom.messages` asks of a shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from headroom.errors import InvalidMessagesError

STRING_MIN = 256
"""Strings (and JSON values) shorter than this many characters are left alone: too small to
be worth a compression decision, and a response may hold thousands of them."""
MAX_STRINGS = 8
"""A JSON value holding more large strings than this is compressed as one JSON payload."""
FUNCTION_CALL = ("functionCall", "function_call")
FUNCTION_RESPONSE = ("functionResponse", "function_response")
SYSTEM = ("systemInstruction", "system_instruction")

Output = tuple[tuple[int, ...], str, str | None, Any]
"""(location, text, tool name, the tool call's args)."""


def check(contents: Sequence[Any]) -> None:
    """Raise InvalidMessagesError, naming the place, for anything that cannot be read."""
    for index, content in enumerate(contents):
        if not isinstance(content, Mapping):
            raise InvalidMessagesError(
                f"contents[{index}] must be an object with 'role' and 'parts', "
                f"got {type(content).__name__}"
            )
        parts = content.get("parts")
        if parts is not None and not isinstance(parts, list):
            raise InvalidMessagesError(
                f"contents[{index}].parts must be a list of parts, got {type(parts).__name__}"
            )
        for number, part in enumerate(parts or []):
            where = f"contents[{index}].parts[{number}]"
            if not isinstance(part, Mapping):
                raise InvalidMessagesError(f"{where} must be an object, got {type(part).__name__}")
            for names in (FUNCTION_CALL, FUNCTION_RESPONSE):
                value = _get(part, names)
                if value is not None and not isinstance(value, Mapping):
                    raise InvalidMessagesError(f"{where}.{names[0]} must be an object")


def outputs(contents: Sequence[Any]) -> list[Output]:
    """Every payload of the function responses, in order, with the call that asked for it."""
    pending: list[Mapping[str, Any]] = []
    found: list[Output] = []
    for index, content in enumerate(contents):
        parts = content.get("parts") or []
        calls = [call for part in parts if isinstance(call := _get(part, FUNCTION_CALL), Mapping)]
        if calls:
            pending = calls  # responses answer the calls of the model's latest turn
        for number, part in enumerate(parts):
            response = _get(part, FUNCTION_RESPONSE)
            if not isinstance(response, Mapping) or not isinstance(
                response.get("response"), Mapping
            ):
                continue
            call = _take(pending, response)
            name = response.get("name")
            tool = str(name) if name is not None else None
            for steps, text in _payloads(response["response"]):
                found.append(((index, number, *steps), text, tool, call.get("args")))
    return found


def tool_inputs(content: Mapping[str, Any]) -> list[Any]:
    """The args of the function calls a content makes."""
    return [
        call.get("args")
        for part in content.get("parts") or []
        if isinstance(call := _get(part, FUNCTION_CALL), Mapping)
    ]


def user_texts(content: Mapping[str, Any]) -> list[str]:
    """The text parts of a user content (a content without a role is the user's)."""
    if content.get("role", "user") != "user":
        return []
    return [
        part["text"] for part in content.get("parts") or [] if isinstance(part.get("text"), str)
    ]


def set_text(content: Any, path: tuple[int, ...], text: str) -> None:
    """Put `text` at `path` (part, *steps) of a copied content."""
    part = content["parts"][path[0]]
    node = _get(part, FUNCTION_RESPONSE)["response"]
    for step in path[1:-1]:
        node = node[_key(node, step)]
    node[_key(node, path[-1])] = text


def system_text(body: Mapping[str, Any]) -> str | None:
    """The text of a request's system instruction, if it has one."""
    system = _get(body, SYSTEM)
    if isinstance(system, str):
        return system
    parts = system.get("parts") if isinstance(system, Mapping) else None
    texts = [
        part["text"]
        for part in (parts if isinstance(parts, list) else [])
        if isinstance(part, Mapping) and isinstance(part.get("text"), str)
    ]
    return "\n".join(texts) or None


def _get(value: Mapping[str, Any], names: tuple[str, str]) -> Any:
    camel, snake = names
    return value[camel] if camel in value else value.get(snake)


def _key(node: Any, step: int) -> Any:
    return list(node)[step] if isinstance(node, Mapping) else step


def _take(pending: list[Mapping[str, Any]], response: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pending call a response answers (by id, else the first of its name), removed."""
    wanted = response.get("id")
    for index, call in enumerate(pending):
        if wanted is not None and call.get("id") == wanted:
            return pending.pop(index)
    for index, call in enumerate(pending):
        if call.get("name") == response.get("name"):
            return pending.pop(index)
    return {}


def _payloads(response: Mapping[str, Any]) -> list[tuple[tuple[int, ...], str]]:
    """(steps, text) of each payload under a response object (never the object itself: the
    API requires `response` to stay an object)."""
    found: list[tuple[tuple[int, ...], str]] = []
    for step, value in enumerate(response.values()):
        _walk(value, (step,), found)
    return found


def _walk(value: Any, steps: tuple[int, ...], found: list[tuple[tuple[int, ...], str]]) -> None:
    if isinstance(value, str):
        if len(value) >= STRING_MIN:
            found.append((steps, value))
        return
    if not isinstance(value, Mapping | list) or not value:
        return
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if len(text) < STRING_MIN:
        return
    strings = _large_strings(value)
    if strings and len(strings) <= MAX_STRINGS and 2 * sum(strings) >= len(text):
        children = value.values() if isinstance(value, Mapping) else value
        for step, child in enumerate(children):
            _walk(child, (*steps, step), found)
        return
    found.append((steps, text))


def _large_strings(value: Any) -> list[int]:
    """Lengths of the large strings inside a JSON value; stops past MAX_STRINGS of them."""
    lengths: list[int] = []
    stack = [value]
    while stack and len(lengths) <= MAX_STRINGS:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) >= STRING_MIN:
                lengths.append(len(item))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return lengths
