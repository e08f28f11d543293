"""The Anthropic adapter: `POST /v1/messages` (streaming or not) goes through the
conversation layer; every other path is passed through byte for byte.

A body that is not a JSON object, or whose messages headroom cannot read, gets a 400 in
Anthropic's own error shape; any other headroom failure forwards the client's body as it
came (fail open). The turn is accounted after the client has the whole answer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from headroom.config import Settings
from headroom.conversation.request import Prepared, account, prepare
from headroom.errors import HeadroomError, InvalidMessagesError
from headroom.proxy import upstream
from headroom.store.base import Store

SESSION_HEADERS = ("x-headroom-session-id", "x-claude-code-session-id")
COMPACTING_CLIENTS = ("claude-cli", "claude-code")


@dataclass(frozen=True)
class Anthropic:
    """The adapter's endpoints, bound to one upstream client, store and settings."""

    client: httpx.AsyncClient
    store: Store
    settings: Settings

    async def messages(self, request: Request) -> Response:
        """`POST /v1/messages`: compress, forward, relay, then account."""
        raw = await request.body()
        if request.headers.get("x-headroom-bypass", "").lower() == "true":
            return await self._send(request, raw)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return error(400, "invalid_request_error", f"the request body is not JSON: {exc}")
        if not isinstance(body, dict):
            return error(400, "invalid_request_error", "the request body must be a JSON object")
        try:
            prepared = await run_in_threadpool(self._prepare, body, request)
        except InvalidMessagesError as exc:
            return error(400, "invalid_request_error", str(exc))
        except HeadroomError:
            return await self._send(request, raw)
        # ASCII JSON: lone surrogates from the client's escapes stay escapes, never bad UTF-8.
        forwarded = json.dumps(prepared.body).encode()

        def finished(answer: bytes) -> None:
            self._account(body, prepared, answer)

        return await self._send(request, forwarded, finished)

    async def passthrough(self, request: Request) -> Response:
        """Any other path: the client's bytes upstream, the upstream's bytes back."""
        return await self._send(request, await request.body())

    def _prepare(self, body: dict[str, Any], request: Request) -> Prepared:
        session = next((request.headers[h] for h in SESSION_HEADERS if h in request.headers), None)
        agent = request.headers.get("user-agent", "").lower()
        compacts = any(name in agent for name in COMPACTING_CLIENTS)
        return prepare(
            body, "anthropic", self.store, self.settings, session=session, client_compacts=compacts
        )

    async def _send(
        self, request: Request, content: bytes, finished: upstream.Finished | None = None
    ) -> Response:
        url = upstream.target(self.settings.anthropic_url, request)
        try:
            return await upstream.relay(self.client, request, url, content, finished)
        except httpx.TransportError as exc:
            message = f"headroom could not reach {self.settings.anthropic_url}: {exc!r}; check --anthropic-url and the network"
            return error(502, "api_error", message)

    def _account(self, body: Mapping[str, Any], prepared: Prepared, answer: bytes) -> None:
        # The ledger never stands between a client and its answer.
        with contextlib.suppress(HeadroomError):
            account(self.store, body, prepared, usage_of(answer))


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
