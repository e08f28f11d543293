"""Gemini as a `Provider`: `POST /{version}/models/{model}:generateContent` and
`:streamGenerateContent` (SSE with `?alt=sse`, else a streamed JSON array) are the
conversation endpoints, for each API version the SDKs use (`v1beta`, `v1`, `v1alpha`); every
other Gemini request (countTokens, the models list, files, cached contents) is passed through
byte for byte.

A request is Gemini's by its path (`/v1beta/...`, `/v1alpha/...`, `/upload/...`, or a
`/v1/models/{model}:{action}` that no other provider has) or by its key: the
`x-goog-api-key` header or the `?key=` query, both sent upstream untouched. `gemini_url` is
the base URL as the `google-genai` SDK takes it (`https://generativelanguage.googleapis.com`):
the path keeps its version. The path names the
model, so the conversation layer and the ledger are given it while the forwarded body stays
without it. Errors are Google's `{"error": {"code", "message", "status"}}`; the usage of an
answer is its last `usageMetadata`, handed to the ledger as prompt and completion counts with
the cached part of the prompt. Retrieve in the loop is `retrieve_gemini`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from headroom.proxy import upstream
from headroom.proxy.adapter import Adapter, Provider
from headroom.proxy.retrieve_gemini import GeminiDialect, GeminiLoop

SESSION_HEADER = "x-headroom-session-id"
_CONVERSATION = re.compile(
    r"/v1(?:beta|alpha)?/(?:models|tunedModels)/([^/:]+)"
    r":(?:generateContent|streamGenerateContent)"
)
GEMINI_PATH = re.compile(
    r"/(?:upload/)?v1(?:beta|alpha)/.*"
    r"|/v1/(?:models|tunedModels)/[^/:]+"
    r":(?:generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents)"
)
KEY_HEADER = "x-goog-api-key"


def is_gemini(request: Request) -> bool:
    """Whether a request is Gemini's, by its path or by the key it carries."""
    return bool(
        GEMINI_PATH.fullmatch(request.url.path)
        or KEY_HEADER in request.headers
        or "key" in request.query_params
    )


def client_context(request: Request) -> tuple[str | None, bool]:
    """The session a client names in its headers; Gemini's budget is not trimmed anyway."""
    return request.headers.get(SESSION_HEADER), False


def model_of(request: Request) -> str | None:
    """The model a conversation path names (`gemini-2.5-flash`)."""
    found = _CONVERSATION.fullmatch(request.url.path)
    return found.group(1) if found else None


def error(status: int, kind: str, message: str) -> JSONResponse:
    """An error in Google's shape; `kind` is its status name (`INVALID_ARGUMENT`)."""
    body = {"error": {"code": status, "message": message, "status": kind}}
    return JSONResponse(body, status_code=status)


def usage_of(answer: bytes) -> dict[str, Any] | None:
    """The usage of a generateContent answer (JSON, SSE or a streamed JSON array: the last
    `usageMetadata`, which counts the whole answer) in the ledger's terms; None when there
    is none to read."""
    found: dict[str, Any] | None = None
    for event in _events(answer):
        if isinstance(event.get("usageMetadata"), dict):
            found = event["usageMetadata"]
    if found is None:
        return None
    prompt = _count(found, "promptTokenCount") + _count(found, "toolUsePromptTokenCount")
    output = _count(found, "candidatesTokenCount") + _count(found, "thoughtsTokenCount")
    cached = {"cached_tokens": _count(found, "cachedContentTokenCount")}
    return {"prompt_tokens": prompt, "completion_tokens": output, "prompt_tokens_details": cached}


def _events(answer: bytes) -> list[dict[str, Any]]:
    """The answer's JSON objects: a streamed array's elements, else as `answer_events`."""
    text = answer.decode("utf-8", errors="replace").lstrip()
    if not text.startswith("["):
        return upstream.answer_events(answer)
    try:
        items = json.loads(text)
    except ValueError:
        return []  # a stream cut short: its usage is simulated
    return [item for item in items if isinstance(item, dict)]


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def endpoint(adapter: Adapter) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of Gemini's requests (`is_gemini`): a conversation through the adapter's
    conversation layer, anything else passed through."""

    async def gemini(request: Request) -> Response:
        if request.method == "POST" and _CONVERSATION.fullmatch(request.url.path):
            return await adapter.compress(request)
        return await adapter.passthrough(request)

    return gemini


GEMINI = Provider(
    name="gemini",
    url_setting="gemini_url",
    invalid_request="INVALID_ARGUMENT",
    unreachable="UNAVAILABLE",
    error=error,
    usage_of=usage_of,
    client_context=client_context,
    model_of=model_of,
    retrieve=GeminiLoop(GeminiDialect()),
)
