"""What crosses the proxy's wire on odd input, over real HTTP on loopback: header bytes that
are not ASCII and repeated headers (both ways, on the conversation path and on passthrough),
a body nested deeper than a parser can follow, and the access log of a request that carries
its key in the query."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from headroom.config import Settings
from headroom.proxy import create_app
from headroom.store import open_store
from tests.proxy.conftest import serve, stop

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-6"
BODY = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
DISPOSITION = 'attachment; filename="r\u00e9sum\u00e9 \u20ac.txt"'.encode()
"""A header value in UTF-8, as an upstream may send a file's name."""


class Echo:
    """An upstream that records each request's raw headers and answers with UTF-8 and
    repeated headers of its own."""

    def __init__(self) -> None:
        self.headers: list[list[tuple[bytes, bytes]]] = []
        self.bodies: list[bytes] = []

    async def answer(self, request: Request) -> Response:
        self.bodies.append(await request.body())
        self.headers.append(list(request.headers.raw))
        response = JSONResponse({"id": "msg_1", "type": "message", "content": []})
        response.raw_headers += [
            (b"content-disposition", DISPOSITION),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ]
        return response

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/livez", lambda _: JSONResponse({"status": "ok"}), methods=["GET"]),
                Route("/{path:path}", self.answer, methods=["GET", "POST"]),
            ]
        )


@pytest.fixture
def echo() -> Iterator[tuple[Echo, str]]:
    upstream = Echo()
    upstream_served = serve(upstream.app())
    settings = Settings(
        store="memory://", anthropic_url=upstream_served.url, gemini_url=upstream_served.url
    )
    proxy = serve(create_app(settings, store=open_store("memory://")))
    yield upstream, proxy.url
    stop(proxy)
    stop(upstream_served)


TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


@pytest.mark.parametrize(
    ("path", "tools"),
    [("/v1/messages", None), ("/v1/messages/count_tokens", None), ("/v1/messages", TOOLS)],
    ids=["conversation", "passthrough", "retrieve-loop"],
)
def test_header_bytes_and_repeats_cross_both_ways_unchanged(
    echo: tuple[Echo, str], path: str, tools: list[dict[str, object]] | None
) -> None:
    upstream, url = echo
    body = {**BODY, "tools": tools} if tools else BODY
    sent = [
        (b"x-api-key", b"sk-ant-secret"),
        (b"x-title", "caf\u00e9 \u2615".encode()),
        (b"anthropic-beta", b"one-2025"),
        (b"anthropic-beta", b"two-2025"),
        (b"x-headroom-session-id", b"s1"),
    ]
    response = httpx.post(url + path, json=body, headers=sent, timeout=10)
    assert response.status_code == 200, response.text
    received = [(n, v) for n, v in upstream.headers[-1] if n in {h for h, _ in sent}]
    assert received == [pair for pair in sent if not pair[0].startswith(b"x-headroom-")]
    relayed = response.headers.raw
    assert (b"content-disposition", DISPOSITION) in relayed
    assert [v for n, v in relayed if n.lower() == b"set-cookie"] == [b"a=1", b"b=2"]


@pytest.mark.parametrize("depth", [5_000, 200_000])
def test_a_body_nested_too_deep_gets_a_400_in_anthropics_shape(
    echo: tuple[Echo, str], depth: int
) -> None:
    upstream, url = echo
    raw = b'{"model": "m", "messages": ' + b"[" * depth + b"]" * depth + b"}"
    response = httpx.post(f"{url}/v1/messages", content=raw, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert upstream.headers == []


@pytest.mark.parametrize(
    "body",
    [
        {**BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
            "x": json.loads("[" * 900 + "]" * 900)}]}]},
        {**BODY, "model": 5},
    ],
    ids=["nested-content", "model-not-a-string"],
)  # fmt: skip
def test_a_body_headroom_cannot_compress_is_forwarded_as_it_came(
    echo: tuple[Echo, str], body: dict[str, object]
) -> None:
    upstream, url = echo
    raw = json.dumps(body).encode()
    response = httpx.post(f"{url}/v1/messages", content=raw, timeout=10)
    assert response.status_code == 200, response.text
    assert upstream.bodies == [raw]
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert "headroom_fail_open_total 1" in metrics.splitlines()


def test_a_key_in_the_query_never_reaches_the_access_log(echo: tuple[Echo, str]) -> None:
    _, url = echo
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    handler, level = Keep(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        path = "/v1beta/models?pageSize=5&key=AIza-secret-key&x=1"
        response = httpx.get(url + path, timeout=10)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert response.status_code == 200
    logged = [line for line in records if "/v1beta/models" in line]
    assert logged, records
    assert not [line for line in logged if "AIza-secret-key" in line], logged
    assert "pageSize=5" in logged[0] and "x=1" in logged[0]
    assert json.loads(response.content)["id"] == "msg_1"
