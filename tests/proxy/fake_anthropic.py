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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.proxy.retrieving_model import (
    ANSWER,
    HANGING,
    LIMITED,
    PIECES,
    RETRIEVE,
    RETRIEVING,
    TOOLS,
    Decision,
    Result,
    View,
    decide,
)


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
class Recording:
    """What a fake API has received, its `/livez`, and the recording of a JSON request."""

    received: list[Received] = field(default_factory=list)

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        self.received.append(Received(request.url.path, dict(request.headers), raw))
        return json.loads(raw)


@dataclass
class Fake(Recording):
    """The fake API and what it has received."""

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
            stream = sse_stream(answer_events(body["model"], usage))
            return StreamingResponse(stream, media_type="text/event-stream")
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


def answer_events(model: str, usage: dict[str, int]) -> list[dict[str, Any]]:
    """The real event sequence of the text answer, `ANSWER` in `PIECES`."""
    answer = message(model, [{"type": "text", "text": ANSWER}], "end_turn", usage)
    return stream_events(answer, {"output_tokens": usage["output_tokens"]}, lambda _: PIECES)


def stream_events(
    answer: dict[str, Any],
    final_usage: dict[str, Any],
    pieces: Callable[[str], Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """The real event sequence of a whole Messages answer: `message_start` (no content, one
    output token), each block started (a ping after the first), its text in deltas (its
    `pieces`, two halves unless told) or its input as JSON pieces (an empty one first), and
    stopped; then `message_delta` with the stop reason and the cumulative `final_usage`, and
    `message_stop`."""
    pieces = pieces or halves
    start = {**answer, "content": [], "stop_reason": None}
    start["usage"] = {**answer["usage"], "output_tokens": 1}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(answer["content"]):
        if block["type"] == "text":
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in pieces(block["text"])]
        else:
            opening, raw = {**block, "input": {}}, json.dumps(block["input"])
            parts = ["", *halves(raw)]
            deltas = [{"type": "input_json_delta", "partial_json": part} for part in parts]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": answer["stop_reason"], "stop_sequence": None}
    events.append({"type": "message_delta", "delta": delta, "usage": final_usage})
    return [*events, {"type": "message_stop"}]


def halves(text: str) -> list[str]:
    """Text in two deltas, as a stream splits it."""
    middle = len(text) // 2
    return [text[:middle], text[middle:]]


async def sse_stream(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Events as the API's server-sent events."""
    for event in events:
        yield sse(event["type"], event)


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def retrieving_answer(body: dict[str, Any], usage: dict[str, int]) -> Response:
    """The `retrieve-` model's answer, JSON or streamed."""
    view = anthropic_view(body)
    if body["model"] == LIMITED and retrieved(body):
        return rate_limited()
    content = anthropic_content(decide(body["model"], view), view.calls)
    stop = "tool_use" if any(block["type"] == "tool_use" for block in content) else "end_turn"
    answer = message(body["model"], content, stop, usage)
    if body.get("stream"):
        stream = sse_stream(stream_events(answer, answer["usage"]))
        return StreamingResponse(stream, media_type="text/event-stream", headers=REQUEST_ID)
    return JSONResponse(answer, headers=REQUEST_ID)


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
