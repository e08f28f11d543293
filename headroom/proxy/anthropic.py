"""Anthropic as a `Provider`: its error shape, where `usage` sits in a Messages answer (JSON
or SSE), and how a client names its session (`x-headroom-session-id`, or Claude Code's own
`x-claude-code-session-id`). `POST /v1/messages` is the conversation endpoint.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from headroom.proxy import upstream
from headroom.proxy.adapter import Provider
from headroom.proxy.retrieve_anthropic import AnthropicDialect
from headroom.proxy.retrieve_loop import RetrieveLoop

SESSION_HEADERS = ("x-headroom-session-id", "x-claude-code-session-id")
COMPACTING_CLIENTS = ("claude-cli", "claude-code")


def client_context(request: Request) -> tuple[str | None, bool]:
    """The session a client names in its headers, and whether it is a client that compacts
    its own context (Claude Code)."""
    session = next((request.headers[h] for h in SESSION_HEADERS if h in request.headers), None)
    agent = request.headers.get("user-agent", "").lower()
    return session, any(name in agent for name in COMPACTING_CLIENTS)


def error(status: int, kind: str, message: str) -> JSONResponse:
    """An error in Anthropic's shape."""
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": message}}, status_code=status
    )


def usage_of(answer: bytes) -> dict[str, Any] | None:
    """The `usage` of a Messages answer, JSON or SSE (`message_start` carries the input
    side, `message_delta` the output); None when there is none to read."""
    found: dict[str, Any] = {}
    for event in upstream.answer_events(answer):
        usage = (event.get("message") or {}) if event.get("type") == "message_start" else event
        if isinstance(usage.get("usage"), dict):
            found.update(usage["usage"])
    return found or None


ANTHROPIC = Provider(
    name="anthropic",
    url_setting="anthropic_url",
    invalid_request="invalid_request_error",
    unreachable="api_error",
    error=error,
    usage_of=usage_of,
    client_context=client_context,
    retrieve=RetrieveLoop(AnthropicDialect()),
)
