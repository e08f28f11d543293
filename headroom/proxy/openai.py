"""The OpenAI adapter: `POST /v1/chat/completions` (streaming or not) goes through the
conversation layer; `POST /v1/responses` and every other OpenAI path is passed through
byte for byte.

The proxy's paths are the SDK's paths under `/v1`, and `openai_url` is the base URL as the
SDK takes it (`https://api.openai.com/v1`), so `/v1/chat/completions` goes to
`{openai_url}/chat/completions`. A body that is not a JSON object, or whose messages
headroom cannot read, gets a 400 in OpenAI's own error shape; any other headroom failure
forwards the client's body as it came (fail open). The turn is accounted after the client
has the whole answer, with the `usage` of the JSON answer or, for a stream, of the chunk
that carries it (sent when the client asks `stream_options.include_usage`).
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

SESSION_HEADER = "x-headroom-session-id"


@dataclass(frozen=True)
class OpenAI:
    """The adapter's endpoints, bound to one upstream client, store and settings."""

    client: httpx.AsyncClient
    store: Store
    settings: Settings

    async def chat_completions(self, request: Request) -> Response:
        """`POST /v1/chat/completions`: compress, forward, relay, then account."""
        raw = await request.body()
        if request.headers.get("x-headroom-bypass", "").lower() == "true":
            return await self._send(request, raw)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return error(400, "invalid_request_error", f"the request body is not JSON: {exc}")
        if not isinstance(body, dict):
            return error(400, "invalid_request_error", "the request body must be a JSON object")
        session = request.headers.get(SESSION_HEADER)
        try:
            prepared = await run_in_threadpool(self._prepare, body, session)
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
        """`POST /v1/responses` and any other OpenAI path: the client's bytes upstream, the
        upstream's bytes back."""
        return await self._send(request, await request.body())

    def _prepare(self, body: dict[str, Any], session: str | None) -> Prepared:
        return prepare(body, "openai", self.store, self.settings, session=session)

    async def _send(
        self, request: Request, content: bytes, finished: upstream.Finished | None = None
    ) -> Response:
        url = target(self.settings.openai_url, request)
        try:
            return await upstream.relay(self.client, request, url, content, finished)
        except httpx.TransportError as exc:
            message = f"headroom could not reach {self.settings.openai_url}: {exc!r}; check --openai-url and the network"
            return error(502, "server_error", message)

    def _account(self, body: Mapping[str, Any], prepared: Prepared, answer: bytes) -> None:
        # The ledger never stands between a client and its answer.
        with contextlib.suppress(HeadroomError):
            account(self.store, body, prepared, usage_of(answer))


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
    one); None when there is none to read (an error, a compressed body, a stream without
    `include_usage` or cut short)."""
    text = answer.decode("utf-8", errors="replace").lstrip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        usage = parsed.get("usage") if isinstance(parsed, dict) else None
        return usage if isinstance(usage, dict) else None
    found: dict[str, Any] | None = None
    for line in text.splitlines():
        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
            continue
        try:
            chunk = json.loads(line[5:])
        except ValueError:
            continue
        usage = chunk.get("usage") if isinstance(chunk, dict) else None
        if isinstance(usage, dict):
            found = usage
    return found
