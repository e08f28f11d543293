"""The `retrieve-` model's Responses on the fake OpenAI API (tests/proxy/fake_openai.py):
the model's view of a conversation of input items, its output items (each with an id of its
own), their stream events, and the API's rule that every function call has its output.
"""

from __future__ import annotations

import json
from typing import Any

from tests.proxy.fake_anthropic import result_text
from tests.proxy.retrieving_model import RETRIEVE, Decision, Result, View


def unanswered(items: list[Any]) -> str | None:
    """The call id of a function call the conversation holds no output for, if any."""
    answered = {item.get("call_id") for item in items if item.get("type") == "function_call_output"}
    calls = [item["call_id"] for item in items if item.get("type") == "function_call"]
    return next((call for call in calls if call not in answered), None)


def responses_view(items: list[Any]) -> View:
    calls = {
        item["call_id"]: (item["name"], json.loads(item["arguments"]))
        for item in items
        if item.get("type") == "function_call"
    }
    outputs = [item for item in items if item.get("type") == "function_call_output"]
    newest = len(items)
    while newest and items[newest - 1].get("type") == "function_call_output":
        newest -= 1
    return View(
        newest=[
            Result(*calls.get(item["call_id"], (None, None)), result_text(item["output"]))
            for item in items[newest:]
        ],
        client_results=sum(
            1 for item in outputs if calls.get(item["call_id"], ("",))[0] != RETRIEVE
        ),
        calls=len(calls),
    )


def response_output(decision: Decision, calls: int, response_id: str) -> list[dict[str, Any]]:
    """The `retrieve-` model's output items, each with an id of its own."""
    suffix = response_id.removeprefix("resp_")
    output: list[dict[str, Any]] = []
    if decision.text:
        text = {"type": "output_text", "annotations": [], "logprobs": [], "text": decision.text}
        output.append({"type": "message", "id": f"msg_{suffix}", "status": "completed",
                       "role": "assistant", "content": [text]})  # fmt: skip
    for number, (name, arguments) in enumerate(decision.calls, calls + 1):
        output.append({"type": "function_call", "id": f"fc_{suffix}_{number}",
                       "call_id": f"call_{number:04d}", "name": name,
                       "arguments": json.dumps(arguments), "status": "completed"})  # fmt: skip
    return output


def split_item_events(index: int, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """`item_events` with a message's own text in two deltas and a call's arguments in two."""
    where = {"item_id": item["id"], "output_index": index}
    added = ("response.output_item.added", {"output_index": index, "item": _started(item)})
    done = ("response.output_item.done", {"output_index": index, "item": item})
    middle: list[tuple[str, dict[str, Any]]] = []
    if item["type"] == "function_call":
        raw = item["arguments"]
        middle = [
            ("response.function_call_arguments.delta", {**where, "delta": piece})
            for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :])
        ]
        middle.append(("response.function_call_arguments.done", {**where, "arguments": raw}))
        return [added, *middle, done]
    for number, part in enumerate(item["content"]):
        at, text = {**where, "content_index": number}, part["text"]
        middle.append(("response.content_part.added", {**at, "part": {**part, "text": ""}}))
        middle += [
            ("response.output_text.delta", {**at, "delta": piece, "logprobs": []})
            for piece in (text[: len(text) // 2], text[len(text) // 2 :])
        ]
        middle.append(("response.output_text.done", {**at, "text": text, "logprobs": []}))
        middle.append(("response.content_part.done", {**at, "part": part}))
    return [added, *middle, done]


def _started(item: dict[str, Any]) -> dict[str, Any]:
    if item["type"] == "function_call":
        return {**item, "status": "in_progress", "arguments": ""}
    return {**item, "status": "in_progress", "content": []}
