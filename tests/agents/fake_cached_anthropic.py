"""A fake Anthropic API with a prompt cache, for driving a real agent CLI on the wire.

It answers `POST /v1/messages` (JSON, or the real SSE event sequence when `stream` is set)
and `POST /v1/messages/count_tokens`; any other path gets the API's 404 error body. Every
request is recorded with the `usage` it was answered with, which `PromptCache` computes the
way the API does (reads, writes and the uncached tail, by `cache_control` breakpoint).

The model follows a `Script`: a request that offers tools gets the script's next tool call
(one per tool result the conversation already holds), then the script's final text.
Requests without tools (an agent's side calls: titles, summaries) get a short text answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from headroom import tokens
from tests.agents.prompt_cache import PromptCache, total_tokens
from tests.proxy.fake_anthropic import Received, sse_stream, stream_events

SIDE_ANSWER = "Reading a build log"
REQUEST_ID = {"request-id": "req_fakecache0001"}
DELTA_USAGE = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)
"""The usage fields `message_delta` repeats, cumulative, at the end of a stream."""


@dataclass(frozen=True)
class Script:
    """What the fake model does in a session: these tool calls in turn, then this text."""

    tool_calls: list[tuple[str, dict[str, Any]]]
    answer: str


@dataclass
class Exchange(Received):
    """One request as the fake received it, and the usage it answered with."""

    usage: dict[str, Any] | None = None


@dataclass
class CachedFake:
    """The fake API, its prompt cache and what it has received."""

    script: Script
    cache: PromptCache = field(default_factory=PromptCache)
    received: list[Exchange] = field(default_factory=list)

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(
            routes=[
                Route("/livez", self.livez, methods=["GET"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
                Route("/{path:path}", self.unknown, methods=methods),
            ]
        )

    def conversations(self) -> list[Exchange]:
        """The Messages requests that offered tools: the agent's own turns, in order."""
        return [e for e in self.received if e.path == "/v1/messages" and e.body.get("tools")]

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _record(self, request: Request) -> Exchange:
        exchange = Exchange(request.url.path, dict(request.headers), await request.body())
        self.received.append(exchange)
        return exchange

    async def unknown(self, request: Request) -> Response:
        await self._record(request)
        return error(404, "not_found_error", f"Not found: {request.url.path}")

    async def count_tokens(self, request: Request) -> Response:
        body = (await self._record(request)).body
        return JSONResponse({"input_tokens": total_tokens(body)}, headers=REQUEST_ID)

    async def messages(self, request: Request) -> Response:
        exchange = await self._record(request)
        body = exchange.body
        if not isinstance(body.get("max_tokens"), int):
            return error(400, "invalid_request_error", "max_tokens: Field required")
        exchange.usage = self.cache.usage(body)
        content = self.answer(body)
        stop = "tool_use" if content[0]["type"] == "tool_use" else "end_turn"
        output = tokens.count(json.dumps(content))
        usage = {**exchange.usage, "output_tokens": output, "service_tier": "standard"}
        answer = message(f"msg_fakecache{len(self.received):04d}", body["model"], content, stop)
        answer["usage"] = usage
        if body.get("stream"):
            final = {key: usage[key] for key in DELTA_USAGE}
            stream = sse_stream(stream_events(answer, final))
            return StreamingResponse(stream, media_type="text/event-stream", headers=REQUEST_ID)
        return JSONResponse(answer, headers=REQUEST_ID)

    def answer(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The model's content for a request, by the script."""
        if not body.get("tools"):
            return [{"type": "text", "text": SIDE_ANSWER}]
        done = sum(
            1
            for m in body["messages"]
            if isinstance(m.get("content"), list)
            for block in m["content"]
            if block.get("type") == "tool_result"
        )
        if done < len(self.script.tool_calls):
            name, arguments = self.script.tool_calls[done]
            call_id = f"toolu_fake{done + 1:04d}"
            return [{"type": "tool_use", "id": call_id, "name": name, "input": arguments}]
        return [{"type": "text", "text": self.script.answer}]


def error(status: int, kind: str, text: str) -> Response:
    body = {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_fake"}
    return JSONResponse(body, status_code=status, headers=REQUEST_ID)


def message(id_: str, model: str, content: list[Any], stop: str) -> dict[str, Any]:
    """A Messages answer without its usage; each answer has its own id, as clients merge
    streamed messages that share one."""
    return {
        "id": id_,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
    }
