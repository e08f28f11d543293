"""The wire between the proxy and an upstream API: which headers cross, and relaying the
upstream's answer to the client as its bytes arrive.

Auth headers cross untouched; hop-by-hop headers, `host`, `content-length` and every
`x-headroom-*` header stop here. A relayed answer keeps the upstream's status, headers and
bytes (compressed bytes stay compressed, with their `content-encoding`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length"}
_NOT_RELAYED = HOP_BY_HOP | {"content-length"}

Finished = Callable[[bytes], None]
"""Called with the whole relayed answer once the client has it (usage, accounting)."""


def request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers as they go upstream."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in _NOT_FORWARDED and not name.lower().startswith("x-headroom-")
    }


def response_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    """The upstream's headers as they go back to the client."""
    return [(name, value) for name, value in headers.multi_items() if name not in _NOT_RELAYED]


def target(base_url: str, request: Request) -> str:
    """The upstream URL for a client request: its path and query on the base URL."""
    query = request.url.query
    return base_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


async def relay(
    client: httpx.AsyncClient,
    request: Request,
    url: str,
    content: bytes,
    finished: Finished | None = None,
) -> Response:
    """Sends the request upstream and streams the answer back as it arrives; `finished`
    runs after the client has the last byte."""
    outgoing = client.build_request(
        request.method, url, headers=request_headers(request.headers), content=content
    )
    upstream = await client.send(outgoing, stream=True)
    if upstream.status_code >= 400:
        finished = None  # an error answer is relayed, not accounted
    received: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                if finished is not None:
                    received.append(chunk)
                yield chunk
        finally:
            await upstream.aclose()

    task = BackgroundTask(_after, finished, received) if finished is not None else None
    return _response(upstream, body(), task)


def _response(
    upstream: httpx.Response, body: AsyncIterator[bytes], task: BackgroundTask | None
) -> Response:
    response = StreamingResponse(body, status_code=upstream.status_code, background=task)
    response.raw_headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response_headers(upstream.headers)
    ]
    return response


def _after(finished: Finished, received: list[bytes]) -> None:
    finished(b"".join(received))


def answer_events(answer: bytes) -> list[dict[str, Any]]:
    """The JSON objects of a whole answer: the body itself, or each SSE `data:` line's
    (lines that are not JSON objects, such as `[DONE]`, are skipped)."""
    text = answer.decode("utf-8", errors="replace").lstrip()
    pieces = [text] if text.startswith("{") else [
        line[5:] for line in text.splitlines() if line.startswith("data:")
    ]  # fmt: skip
    events = []
    for piece in pieces:
        try:
            event = json.loads(piece)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
