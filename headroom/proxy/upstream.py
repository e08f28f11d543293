"""The wire between the proxy and an upstream API: which headers cross, and relaying the
upstream's answer to the client as its bytes arrive.

Auth headers cross untouched; hop-by-hop headers, `host`, `content-length` and every
`x-headroom-*` header stop on the way up. A relayed answer keeps the upstream's status,
end-to-end headers and bytes (compressed bytes stay compressed, with their
`content-encoding`; a `content-length` stays true, so an answer the upstream cuts short
looks the same to the client as it would going direct). Headers cross both ways as their
bytes, repeats included: a value that is not ASCII (a file's UTF-8 name) is neither an error
nor re-encoded. A client that disconnects cancels the upstream call.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

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
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "accept-encoding"}
_NOT_RELAYED = HOP_BY_HOP
_QUERY_KEY = re.compile(r"([?&]key=)[^&#]*")

logger = logging.getLogger("headroom.proxy")

Finished = Callable[[bytes], None]
"""Called with the whole relayed answer once the client has it (usage, accounting)."""
CLIENT_GONE = 499
"""The status of a request whose client left before its answer: never sent, only counted."""


def request_headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    """The client's headers as they go upstream, as their bytes. The upstream is asked for
    an uncompressed answer: headroom reads usage (and retrieve calls) from answers, which it
    cannot in gzip or brotli bytes, and the client is one hop away."""
    forwarded = [
        (name, value)
        for name, value in headers.raw
        if (low := name.lower().decode("latin-1")) not in _NOT_FORWARDED
        and not low.startswith("x-headroom-")
    ]
    return [*forwarded, (b"accept-encoding", b"identity")]


def response_headers(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    """The upstream's headers as they go back to the client, as their bytes."""
    return [
        (name, value)
        for name, value in headers.raw
        if name.lower().decode("latin-1") not in _NOT_RELAYED
    ]


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
    runs after the client has the last byte. A client that disconnects cancels the upstream
    call, whether it is still waiting for the upstream's headers or reading the answer."""
    outgoing = client.build_request(
        request.method, url, headers=request_headers(request.headers), content=content
    )
    answer = await _unless_client_leaves(client, outgoing, request.receive)
    if answer is None:
        return Response(status_code=CLIENT_GONE)
    if answer.status_code >= 400:
        finished = None  # an error answer is relayed, not accounted
    return Relayed(answer, finished)


async def _unless_client_leaves(
    client: httpx.AsyncClient, outgoing: httpx.Request, receive: Receive
) -> httpx.Response | None:
    """The upstream's answer (headers read, body not yet), or None when the client
    disconnected first and the call was cancelled."""
    answers: list[httpx.Response] = []
    errors: list[httpx.TransportError] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
        try:
            answers.append(await client.send(outgoing, stream=True))
        except httpx.TransportError as exc:
            errors.append(exc)  # raised out here, not wrapped in the task group's ExceptionGroup
        group.cancel_scope.cancel()
    if errors:
        raise errors[0]
    return answers[0] if answers else None


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


class Relayed(Response):
    """The upstream's answer, relayed to the client chunk by chunk as it arrives.

    If the client leaves, the upstream response is closed (its connection with it). If the
    upstream cuts its answer short, the client's connection is closed at the same point, so
    the client sees the same truncated answer it would have seen going direct."""

    def __init__(self, answer: httpx.Response, finished: Finished | None) -> None:
        self.answer, self.finished = answer, finished
        self.status_code = answer.status_code
        self.background = None
        self.raw_headers = response_headers(answer.headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received: list[bytes] = []
        complete = False
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": self.status_code,
                        "headers": self.raw_headers,
                    }
                )
                async for chunk in self.answer.aiter_raw():
                    if self.finished is not None:
                        received.append(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                complete = True
            except httpx.TransportError as exc:
                _cut(scope, exc)
            finally:
                with anyio.CancelScope(shield=True):  # a departed client cancelled us
                    await self.answer.aclose()
                group.cancel_scope.cancel()
        if complete and self.finished is not None:
            await run_in_threadpool(self.finished, b"".join(received))


def _cut(scope: Scope, exc: httpx.TransportError) -> None:
    """Logs an answer the upstream cut short; returning without the answer's last message
    makes the server close the client's connection, as the upstream closed the proxy's."""
    logger.warning(
        "the upstream cut its answer to %s %s short (%s); the client's connection is closed "
        "at the same point",
        scope["method"],
        scope["path"],
        exc,
    )


class IncompleteAnswers(logging.Filter):
    """Drops uvicorn's report of an answer that ended without its last message: the relay
    ends one on purpose when the upstream cut it, and logs that itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


class HiddenKeys(logging.Filter):
    """Masks the API key a request carries in its query (Gemini's `?key=`) in uvicorn's access
    log: a client's credentials are never logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 2 and isinstance(args[2], str):
            record.args = (*args[:2], _QUERY_KEY.sub(r"\1***", args[2]), *args[3:])
        return True


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
