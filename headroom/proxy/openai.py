"""OpenAI as a `Provider`: `POST /v1/chat/completions` and `POST /v1/responses` (streaming
or not) are the conversation endpoints; every other OpenAI path is passed through byte for
byte. Responses is a `Provider` of its own (`OPENAI_RESPONSES`) that differs in its body's
shape, where its usage sits, and in its retrieve loop (`retrieve_responses`).

The proxy's paths are the SDK's paths under `/v1`, and `openai_url` is the base URL as the
SDK takes it (`https://api.openai.com/v1`), so `/v1/chat/completions` goes to
`{openai_url}/chat/completions`. A body that is not a JSON object, or whose messages
headroom cannot read, gets a 400 in OpenAI's own error shape; any other headroom failure
forwards the client's body as it came (fail open). The turn is accounted after the client
has the whole answer, with the `usage` of the JSON answer or, for a stream, of the chunk
that carries it (sent when the client asks `stream_options.include_usage`); a Responses
stream carries it in its final `response.completed` event.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from headroom.proxy import upstream
from headroom.proxy.adapter import Provider
from headroom.proxy.retrieve_loop import RetrieveLoop
from headroom.proxy.retrieve_openai import OpenAIDialect
from headroom.proxy.retrieve_responses import ResponsesDialect, ResponsesLoop

SESSION_HEADER = "x-headroom-session-id"


def client_context(request: Request) -> tuple[str | None, bool]:
    """The session a client names in its headers; OpenAI clients are not known to compact."""
    return request.headers.get(SESSION_HEADER), False


def target(base_url: str, request: Request) -> str:
    """The upstream URL for a client request: its path, less the `/v1` the base URL already
    ends with, and its query on the base URL."""
    path = request.url.path
    base = base_url.rstrip("/")
    if base.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
        path = path[3:]
    query = request.url.query
    return base + path + (f"?{query}" if query else "")


def error(status: int, kind: str, message: str) -> JSONResponse:
    """An error in OpenAI's shape."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status)


def usage_of(answer: bytes) -> dict[str, Any] | None:
    """The `usage` of a Chat Completions answer, JSON or SSE (the last chunk that carries
    one); None when there is none to read (an error, a stream without `include_usage`)."""
    found = None
    for event in upstream.answer_events(answer):
        if isinstance(event.get("usage"), dict):
            found = event["usage"]
    return found


OPENAI = Provider(
    name="openai",
    url_setting="openai_url",
    invalid_request="invalid_request_error",
    unreachable="server_error",
    error=error,
    usage_of=usage_of,
    client_context=client_context,
    target=target,
    retrieve=RetrieveLoop(OpenAIDialect()),
)


def responses_usage_of(answer: bytes) -> dict[str, Any] | None:
    """The `usage` of a Responses answer: the JSON response's, or in a stream the response
    of its final event (`response.completed`, or `.incomplete` / `.failed`); None when there
    is none to read."""
    found = None
    for event in upstream.answer_events(answer):
        response = event.get("response")
        carrier = response if isinstance(response, dict) else event
        if isinstance(carrier.get("usage"), dict):
            found = carrier["usage"]
    return found


OPENAI_RESPONSES = replace(
    OPENAI,
    name="openai-responses",
    usage_of=responses_usage_of,
    retrieve=ResponsesLoop(ResponsesDialect()),
)
"""Responses carries its conversation in `input` items, and has a retrieve loop of its own."""
