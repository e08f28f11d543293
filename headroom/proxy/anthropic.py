"""Anthropic as a `Provider`: its error shape, where `usage` sits in a Messages answer (JSON
or SSE), and how a client names its session (`x-headroom-session-id`, or Claude Code's own
`x-claude-code-session-id`). `POST /v1/messages` is the conversation endpoint.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from headroom.proxy.adapter import Provider

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
    """The `usage` of a Messages answer, JSON or SSE; None when there is none to read
    (an error, a compressed body, a stream cut short)."""
    text = answer.decode("utf-8", errors="replace").lstrip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        usage = parsed.get("usage") if isinstance(parsed, dict) else None
        return usage if isinstance(usage, dict) else None
    found: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        try:
            event = json.loads(line[5:])
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("type") == "message_start":
            found.update(event.get("message", {}).get("usage") or {})
        elif event.get("type") == "message_delta":
            found.update(event.get("usage") or {})
    return found or None


ANTHROPIC = Provider(
    name="anthropic",
    url_setting="anthropic_url",
    invalid_request="invalid_request_error",
    unreachable="api_error",
    error=error,
    usage_of=usage_of,
    client_context=client_context,
)
