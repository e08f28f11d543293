"""A fake OpenAI API on the wire: answers as the real one does (chat.completion JSON, the
chat.completion.chunk SSE stream ending in `[DONE]`, error bodies and statuses) and records
every request it receives. Served under `/v1`, as the SDK's base URL has it.

The model name picks the behaviour: `rate-limited` answers 429 with `retry-after`; any
request carrying `tools` gets a `tool_calls` answer until it holds two tool messages.
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

from tests.proxy.fake_anthropic import Received

ANSWER = "The answer is 42."
PIECES = ("The answer", " is", " 42.")
TOOLS = ("json", "email", "http")
CREATED = 1_767_225_600
REQUEST_ID = {"x-request-id": "req_fakeopenai0001"}


@dataclass
class FakeOpenAI:
    """The fake API and what it has received."""

    received: list[Received] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/livez", self.livez, methods=["GET"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/responses", self.responses, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> Response:
        self.received.append(Received(request.url.path, dict(request.headers), b""))
        model = {"id": "gpt-4o", "object": "model", "created": CREATED, "owned_by": "openai"}
        return JSONResponse({"object": "list", "data": [model]}, headers=REQUEST_ID)

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        self.received.append(Received(request.url.path, dict(request.headers), raw))
        return json.loads(raw)

    async def responses(self, request: Request) -> Response:
        body = await self._record(request)
        text = {"type": "output_text", "text": ANSWER, "annotations": []}
        output = {
            "type": "message",
            "id": "msg_fake0001",
            "status": "completed",
            "role": "assistant",
            "content": [text],
        }
        usage = {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 17,
        }
        answer = {
            "id": "resp_fake0001",
            "object": "response",
            "created_at": CREATED,
            "status": "completed",
            "model": body["model"],
            "output": [output],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }
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
