"""A fake OpenAI API on the wire: answers as the real one does (chat.completion JSON, the
chat.completion.chunk SSE stream ending in `[DONE]`, error bodies and statuses) and records
every request it receives. Served under `/v1`, as the SDK's base URL has it.

The model name picks the behaviour: `rate-limited` answers 429 with `retry-after`; a name
starting `retrieve-` is the model of `retrieving_model`, which calls `headroom_retrieve` (its
answers stream as the real chunk sequence for any message: content, then each tool call's
name and argument pieces, and each answer has an id of its own); any other request carrying
`tools` gets a `tool_calls` answer until it holds two tool messages.

`/v1/responses` answers a Response object, or with `stream` its event sequence (created,
in_progress, output_item.added, content_part.added, output_text.delta..., output_text.done,
content_part.done, output_item.done, completed). It stores every response, so a request
naming `previous_response_id` continues that conversation (an unknown id is a 400), and with
`tools` answers a `function_call` until the conversation holds two function call outputs.
A `retrieve-` model keeps each response's whole conversation, answers a conversation with a
function call left without its output with the API's 400, and gives each output item an id
of its own (a stream sends each text in two deltas and each call's arguments in two). The
Responses API's shapes are in tests/proxy/fake_responses.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.proxy.fake_anthropic import Received, Recording, halves, result_text
from tests.proxy.fake_responses import (
    CREATED,
    response_events,
    response_item,
    response_object,
    response_output,
    response_usage,
    responses_view,
    unanswered,
)
from tests.proxy.retrieving_model import (
    ANSWER,
    PIECES,
    RETRIEVE,
    RETRIEVING,
    TOOLS,
    Decision,
    Result,
    View,
    decide,
)

REQUEST_ID = {"x-request-id": "req_fakeopenai0001"}


@dataclass
class FakeOpenAI(Recording):
    """The fake API and what it has received."""

    stored: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Each response's id -> (function call outputs, tokens) of its conversation so far."""
    conversations: dict[str, list[Any]] = field(default_factory=dict)
    """Each `retrieve-` response's id -> its conversation's items, its output last."""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/livez", self.livez, methods=["GET"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/responses", self.responses, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        self.received.append(Received(request.url.path, dict(request.headers), b""))
        model = {"id": "gpt-4o", "object": "model", "created": CREATED, "owned_by": "openai"}
        return JSONResponse({"object": "list", "data": [model]}, headers=REQUEST_ID)

    async def responses(self, request: Request) -> Response:
        body = await self._record(request)
        if body["model"] == "rate-limited":
            return rate_limited()
        if body["model"].startswith(RETRIEVING):
            return self.retrieving_response(body)
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.stored:
            return previous_not_found(previous)
        results, tokens = self.stored.get(previous, (0, 0)) if previous else (0, 0)
        items = body["input"] if isinstance(body["input"], list) else []
        results += sum(1 for item in items if item.get("type") == "function_call_output")
        tokens += len(json.dumps([body.get("instructions"), body["input"], body.get("tools")])) // 4
        response_id = f"resp_fake{len(self.stored) + 1:04d}"
        self.stored[response_id] = (results, tokens + 7)
        item = response_item(body, results)
        answer = response_object(body, response_id, [item], response_usage(tokens))
        if body.get("stream"):
            events = response_events(answer)
            return StreamingResponse(events, media_type="text/event-stream", headers=REQUEST_ID)
        return JSONResponse(answer, headers=REQUEST_ID)

    def retrieving_response(self, body: dict[str, Any]) -> Response:
        """The `retrieve-` model's Response, JSON or streamed, in its conversation so far."""
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.conversations:
            return previous_not_found(previous)
        given = body["input"]
        items = [{"role": "user", "content": given}] if isinstance(given, str) else given
        history = [*self.conversations.get(previous, []), *items] if previous else list(items)
        missing = unanswered(history)
        if missing is not None:
            return no_tool_output(missing)
        view = responses_view(history)
        response_id = f"resp_fake{len(self.stored) + 1:04d}"
        output = response_output(decide(body["model"], view), view.calls, response_id)
        self.stored[response_id] = (0, 0)
        self.conversations[response_id] = [*history, *output]
        tokens = len(json.dumps([body.get("instructions"), given, body.get("tools")])) // 4
        answer = response_object(body, response_id, output, response_usage(tokens))
        if body.get("stream"):
            events = response_events(answer, halves)
            return StreamingResponse(events, media_type="text/event-stream", headers=REQUEST_ID)
        return JSONResponse(answer, headers=REQUEST_ID)

    async def chat_completions(self, request: Request) -> Response:
        body = await self._record(request)
        if body["model"] == "rate-limited":
            return rate_limited()
        prompt = len(json.dumps(body["messages"])) // 4
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": 7,
            "total_tokens": prompt + 7,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        }
        if body["model"].startswith(RETRIEVING):
            return retrieving_answer(body, usage, f"chatcmpl-fake{len(self.received):04d}")
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                chunks(body["model"], usage if include else None),
                media_type="text/event-stream",
                headers=REQUEST_ID,
            )
        message, finish = answer_message(body)
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        completion = {
            "id": "chatcmpl-fake0001",
            "object": "chat.completion",
            "created": CREATED,
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }
        return JSONResponse(completion, headers=REQUEST_ID)


def rate_limited() -> Response:
    error = {
        "message": "Rate limit reached for requests",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    headers = {"retry-after": "17", **REQUEST_ID}
    return JSONResponse({"error": error}, status_code=429, headers=headers)


def answer_message(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A tool call while the conversation has fewer than two tool messages, then text."""
    results = sum(1 for m in body["messages"] if m.get("role") == "tool")
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if body.get("tools") and results < 2:
        arguments = json.dumps({"command": f"grep -rn def {TOOLS[results]}"})
        call = {
            "id": f"call_{results + 1:04d}",
            "type": "function",
            "function": {"name": "Bash", "arguments": arguments},
        }
        return {**message, "tool_calls": [call]}, "tool_calls"
    return {**message, "content": ANSWER}, "stop"


async def chunks(model: str, usage: dict[str, Any] | None) -> AsyncIterator[bytes]:
    """The real chunk sequence for a text answer; with `include_usage`, every chunk carries
    `usage: null` and a last one with no choices carries the usage."""
    extra: dict[str, Any] = {"usage": None} if usage is not None else {}
    deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant", "content": ""}, None)]
    deltas += [({"content": piece}, None) for piece in PIECES]
    deltas.append(({}, "stop"))
    for delta, finish in deltas:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        yield sse(chunk(model, [choice], extra))
    if usage is not None:
        yield sse(chunk(model, [], {"usage": usage}))
    yield b"data: [DONE]\n\n"


def chunk(model: str, choices: list[Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": choices,
        **extra,
    }


def sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def previous_not_found(response_id: str) -> Response:
    error = {
        "message": f"Previous response with id '{response_id}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
    return JSONResponse({"error": error}, status_code=400, headers=REQUEST_ID)


def retrieving_answer(body: dict[str, Any], usage: dict[str, Any], answer_id: str) -> Response:
    """The `retrieve-` model's answer, JSON or streamed."""
    view = openai_view(body)
    message = openai_message(decide(body["model"], view), view.calls)
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    if body.get("stream"):
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        stream = message_chunks(
            body["model"], answer_id, message, finish, usage if include else None
        )
        return StreamingResponse(stream, media_type="text/event-stream", headers=REQUEST_ID)
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    completion = {
        **chunk(body["model"], [choice], {"usage": usage}),
        "id": answer_id,
        "object": "chat.completion",
    }
    return JSONResponse(completion, headers=REQUEST_ID)


def openai_view(body: dict[str, Any]) -> View:
    messages = body["messages"]
    calls = {
        c["id"]: (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for m in messages
        for c in m.get("tool_calls") or []
    }
    results = [m for m in messages if m["role"] == "tool"]
    newest = len(messages)
    while newest and messages[newest - 1]["role"] == "tool":
        newest -= 1
    return View(
        newest=[
            Result(*calls.get(m["tool_call_id"], (None, None)), result_text(m["content"]))
            for m in messages[newest:]
        ],
        client_results=sum(
            1 for m in results if calls.get(m["tool_call_id"], ("",))[0] != RETRIEVE
        ),
        calls=len(calls),
    )


def openai_message(decision: Decision, calls: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": decision.text, "refusal": None}
    if decision.calls:
        message["tool_calls"] = [
            {
                "id": f"call_{number:04d}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for number, (name, arguments) in enumerate(decision.calls, calls + 1)
        ]
    return message


async def message_chunks(
    model: str,
    answer_id: str,
    message: dict[str, Any],
    finish: str,
    usage: dict[str, Any] | None,
) -> AsyncIterator[bytes]:
    """The real chunk sequence for any message: the role (with the first tool call's opening
    piece when there is no content), content in two pieces, each tool call's name then its
    arguments in pieces, the finish, and with `include_usage` the usage chunk."""
    extra: dict[str, Any] = {"usage": None} if usage is not None else {}
    text, calls = message["content"], message.get("tool_calls") or []
    opening: dict[str, Any] = {
        "role": "assistant",
        "content": "" if text else None,
        "refusal": None,
    }
    deltas: list[dict[str, Any]] = [opening]
    if text:
        deltas += [{"content": piece} for piece in halves(text)]
    for index, call in enumerate(calls):
        name = {"name": call["function"]["name"], "arguments": ""}
        first = {
            "tool_calls": [{"index": index, "id": call["id"], "type": "function", "function": name}]
        }
        if index == 0 and not text:
            deltas[0] = {**opening, **first}
        else:
            deltas.append(first)
        raw = call["function"]["arguments"]
        for piece in halves(raw):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    pieces: list[tuple[dict[str, Any], str | None]] = [(d, None) for d in deltas] + [({}, finish)]
    for delta, reason in pieces:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        yield sse({**chunk(model, [choice], extra), "id": answer_id})
    if usage is not None:
        yield sse({**chunk(model, [], {"usage": usage}), "id": answer_id})
    yield b"data: [DONE]\n\n"


def no_tool_output(call_id: str) -> Response:
    error = {
        "message": f"No tool output found for function call {call_id}.",
        "type": "invalid_request_error",
        "param": "input",
        "code": None,
    }
    return JSONResponse({"error": error}, status_code=400, headers=REQUEST_ID)
