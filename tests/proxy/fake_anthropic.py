"""A fake Anthropic API on the wire: answers as the real one does (Messages JSON, the SSE
event sequence, error bodies and statuses) and records every request it receives.

The model name picks the behaviour: `rate-limited` answers 429 with `retry-after`; a name
starting `retrieve-` is the model of `retrieving_model`, which calls `headroom_retrieve` (its
answers stream as the real sequence for any content: text and `tool_use` blocks); any other
request carrying `tools` gets a `tool_use` answer until it holds two tool results. An answer
that waits for its client to leave (`retrieve-hanging`) records that it left in `left`.
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

from tests.proxy.retrieving_model import (
    HANGING,
    LIMITED,
    RETRIEVE,
    RETRIEVING,
    Decision,
    Result,
    View,
    decide,
)

ANSWER = "The answer is 42."
TOOLS = ("json", "email", "http")


@dataclass
class Received:
    """One request as the fake saw it."""

    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Fake:
    """The fake API and what it has received."""

    received: list[Received] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    """The models of the answers whose client left while they were waited for."""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/livez", self.livez, methods=["GET"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            ]
        )

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        self.received.append(Received(request.url.path, dict(request.headers), raw))
        return json.loads(raw)

    async def count_tokens(self, request: Request) -> Response:
        body = await self._record(request)
        return JSONResponse({"input_tokens": len(json.dumps(body["messages"])) // 4})

    async def messages(self, request: Request) -> Response:
        body = await self._record(request)
        if body["model"] == "rate-limited":
            return rate_limited()
        content = answer_content(body)
        usage = {"input_tokens": len(json.dumps(body["messages"])) // 4, "output_tokens": 7}
        if body["model"] == HANGING and retrieved(body):
            return await self.hang(request, body)
        if body["model"].startswith(RETRIEVING):
            return retrieving_answer(body, usage)
        if body.get("stream"):
            return StreamingResponse(events(body["model"], usage), media_type="text/event-stream")
        stop = "tool_use" if content[0]["type"] == "tool_use" else "end_turn"
        return JSONResponse(message(body["model"], content, stop, usage), headers=REQUEST_ID)

    async def hang(self, request: Request, body: dict[str, Any]) -> Response:
        """An answer that never comes (a stream: after its `message_start`): it waits until
        the client leaves, and records that it did."""

        async def wait() -> None:
            try:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
            finally:
                self.left.append(body["model"])

        if not body.get("stream"):
            await wait()
            return Response(status_code=499)  # never sent: the client has left

        async def stream() -> AsyncIterator[bytes]:
            start = message(body["model"], [], "", {"input_tokens": 1, "output_tokens": 1})
            yield sse("message_start", {"type": "message_start", "message": start})
            await wait()

        return StreamingResponse(stream(), media_type="text/event-stream", headers=REQUEST_ID)


REQUEST_ID = {"request-id": "req_fake0001"}


def rate_limited() -> Response:
    error = {
        "type": "rate_limit_error",
        "message": "Number of request tokens has exceeded your per-minute rate limit",
    }
    body = {"type": "error", "error": error, "request_id": "req_fake0002"}
    return JSONResponse(body, status_code=429, headers={"retry-after": "17", **REQUEST_ID})


def answer_content(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A tool call while the conversation has fewer than two tool results, then text."""
    results = sum(
        1
        for m in body["messages"]
        if isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "tool_result"
    )
    if body.get("tools") and results < 2:
        command = f"grep -rn def {TOOLS[results]}"
        return [
            {
                "type": "tool_use",
                "id": f"toolu_{results + 1:04d}",
                "name": "Bash",
                "input": {"command": command},
            }
        ]
    return [{"type": "text", "text": ANSWER}]


def message(model: str, content: list[Any], stop: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "msg_fake0001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {**usage, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


async def events(model: str, usage: dict[str, int]) -> AsyncIterator[bytes]:
    """The real SSE sequence for a text answer, in a few deltas."""
    start = message(model, [], "", {**usage, "output_tokens": 1})
    start["stop_reason"] = None
    yield sse("message_start", {"type": "message_start", "message": start})
    block = {"type": "text", "text": ""}
    yield sse(
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    )
    yield sse("ping", {"type": "ping"})
    for piece in ("The answer", " is", " 42."):
        delta = {"type": "text_delta", "text": piece}
        yield sse(
            "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
        )
    yield sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    stop = {"stop_reason": "end_turn", "stop_sequence": None}
    yield sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": stop,
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield sse("message_stop", {"type": "message_stop"})


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def retrieving_answer(body: dict[str, Any], usage: dict[str, int]) -> Response:
    """The `retrieve-` model's answer, JSON or streamed."""
    view = anthropic_view(body)
    if body["model"] == LIMITED and retrieved(body):
        return rate_limited()
    content = anthropic_content(decide(body["model"], view), view.calls)
    stop = "tool_use" if any(block["type"] == "tool_use" for block in content) else "end_turn"
    if body.get("stream"):
        stream = content_events(body["model"], content, stop, usage)
        return StreamingResponse(stream, media_type="text/event-stream", headers=REQUEST_ID)
    return JSONResponse(message(body["model"], content, stop, usage), headers=REQUEST_ID)


def retrieved(body: dict[str, Any]) -> bool:
    """Whether the newest message carries a retrieve result."""
    return any(r.tool == RETRIEVE for r in anthropic_view(body).newest)


def anthropic_view(body: dict[str, Any]) -> View:
    messages = body["messages"]
    blocks = [
        (m["role"], block)
        for m in messages
        if isinstance(m["content"], list)
        for block in m["content"]
    ]
    calls = {b["id"]: (b["name"], b["input"]) for _, b in blocks if b["type"] == "tool_use"}
    results = [b for _, b in blocks if b["type"] == "tool_result"]
    newest = messages[-1]["content"] if isinstance(messages[-1]["content"], list) else []
    return View(
        newest=[
            Result(*calls.get(b["tool_use_id"], (None, None)), result_text(b.get("content")))
            for b in newest
            if b["type"] == "tool_result"
        ],
        client_results=sum(1 for b in results if calls.get(b["tool_use_id"], ("",))[0] != RETRIEVE),
        calls=len(calls),
    )


def result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(block.get("text", "") for block in content or [] if block["type"] == "text")


def anthropic_content(decision: Decision, calls: int) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    if decision.text:
        content.append({"type": "text", "text": decision.text})
    for number, (name, arguments) in enumerate(decision.calls, calls + 1):
        content.append(
            {"type": "tool_use", "id": f"toolu_{number:04d}", "name": name, "input": arguments}
        )
    return content


async def content_events(
    model: str, content: list[dict[str, Any]], stop: str, usage: dict[str, int]
) -> AsyncIterator[bytes]:
    """The real SSE sequence for any content: text in deltas, a tool's input as JSON pieces,
    a ping after the first block starts, and cumulative usage on `message_delta`."""
    start = message(model, [], "", {**usage, "output_tokens": 1})
    start["stop_reason"] = None
    yield sse("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(content):
        opening: dict[str, Any]
        if block["type"] == "text":
            opening, half = {"type": "text", "text": ""}, len(block["text"]) // 2
            deltas = [
                {"type": "text_delta", "text": p}
                for p in (block["text"][:half], block["text"][half:])
            ]
        else:
            opening, raw = {**block, "input": {}}, json.dumps(block["input"])
            pieces = ("", raw[: len(raw) // 2], raw[len(raw) // 2 :])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        yield sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        if index == 0:
            yield sse("ping", {"type": "ping"})
        for delta in deltas:
            yield sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield sse("content_block_stop", {"type": "content_block_stop", "index": index})
    final = {**message(model, [], stop, usage)["usage"]}
    delta = {"stop_reason": stop, "stop_sequence": None}
    yield sse("message_delta", {"type": "message_delta", "delta": delta, "usage": final})
    yield sse("message_stop", {"type": "message_stop"})
