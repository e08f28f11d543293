"""The Responses API (`/v1/responses`) of the fake OpenAI API (tests/proxy/fake_openai.py):
the Response object and its event sequence, the plain model's output item, and the
`retrieve-` model's: its view of a conversation of input items, its output items (each with
an id of its own) and the API's rule that every function call has its output.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from tests.proxy.fake_anthropic import result_text
from tests.proxy.retrieving_model import ANSWER, PIECES, RETRIEVE, TOOLS, Decision, Result, View

CREATED = 1_767_225_600
"""When the fake OpenAI API's answers were created (Chat Completions' too)."""
Pieces = Callable[[str], Sequence[str]]
"""How a stream splits a text or a call's arguments into deltas."""


def plain_pieces(text: str) -> Sequence[str]:
    """How the plain model streams a string: `ANSWER` in `PIECES`, anything else whole."""
    return PIECES if text == ANSWER else [text]


def response_item(body: dict[str, Any], results: int) -> dict[str, Any]:
    """A function call while the conversation (stored responses included) has fewer than two
    function call outputs and the request carries tools, then a text message."""
    if body.get("tools") and results < 2:
        arguments = json.dumps({"command": f"grep -rn def {TOOLS[results]}"})
        return {
            "type": "function_call",
            "id": f"fc_fake{results + 1:04d}",
            "call_id": f"call_{results + 1:04d}",
            "name": "shell",
            "arguments": arguments,
            "status": "completed",
        }
    text = {"type": "output_text", "annotations": [], "logprobs": [], "text": ANSWER}
    return {
        "type": "message",
        "id": "msg_fake0001",
        "status": "completed",
        "role": "assistant",
        "content": [text],
    }


def response_usage(tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens + 7,
    }


def response_object(
    body: dict[str, Any], response_id: str, output: list[Any], usage: dict[str, Any]
) -> dict[str, Any]:
    """A completed Response as the API returns it."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": body.get("tools", []),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


async def response_events(
    answer: dict[str, Any], pieces: Pieces = plain_pieces
) -> AsyncIterator[bytes]:
    """The real event sequence of a streamed Response: created, in_progress, each output
    item's events (`item_events`, each text and arguments in its `pieces`), completed (whose
    response carries the usage); no `[DONE]`."""
    pending = {**answer, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
    ]
    for index, item in enumerate(answer["output"]):
        events += item_events(index, item, pieces)
    events.append(("response.completed", {"response": answer}))
    for number, (name, data) in enumerate(events):
        event = {"type": name, "sequence_number": number, **data}
        yield f"event: {name}\ndata: {json.dumps(event)}\n\n".encode()


def item_events(
    index: int, item: dict[str, Any], pieces: Pieces
) -> list[tuple[str, dict[str, Any]]]:
    """output_item.added, the item's text or arguments in deltas (its `pieces`), then done,
    and output_item.done."""
    where = {"item_id": item["id"], "output_index": index}
    middle: list[tuple[str, dict[str, Any]]] = []
    if item["type"] == "function_call":
        started = {**item, "status": "in_progress", "arguments": ""}
        raw = item["arguments"]
        middle += [
            ("response.function_call_arguments.delta", {**where, "delta": piece})
            for piece in pieces(raw)
        ]
        middle.append(("response.function_call_arguments.done", {**where, "arguments": raw}))
    else:
        started = {**item, "status": "in_progress", "content": []}
        for number, part in enumerate(item["content"]):
            at, text = {**where, "content_index": number}, part["text"]
            middle.append(("response.content_part.added", {**at, "part": {**part, "text": ""}}))
            middle += [
                ("response.output_text.delta", {**at, "delta": piece, "logprobs": []})
                for piece in pieces(text)
            ]
            middle.append(("response.output_text.done", {**at, "text": text, "logprobs": []}))
            middle.append(("response.content_part.done", {**at, "part": part}))
    added = ("response.output_item.added", {"output_index": index, "item": started})
    done = ("response.output_item.done", {"output_index": index, "item": item})
    return [added, *middle, done]


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
