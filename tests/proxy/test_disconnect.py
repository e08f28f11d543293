"""A client that leaves cancels the proxy's upstream call: while the proxy waits for the
upstream's headers, and while it relays a stream (the fake upstream records each client that
left it). One that leaves while still sending its request is counted, not answered."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from headroom.bench.faults import headers, request_body
from headroom.bench.upstream import FAULT_HEADER, ID_HEADER, Upstream
from headroom.config import Settings
from headroom.proxy import create_app
from headroom.store import open_store
from tests.proxy.conftest import serve, stop

pytestmark = pytest.mark.integration


@pytest.fixture
def servers() -> Iterator[tuple[Upstream, str]]:
    upstream = Upstream()
    served = serve(upstream)
    settings = Settings(store="memory://", anthropic_url=served.url)
    proxy = serve(create_app(settings, store=open_store("memory://")))
    yield upstream, proxy.url
    stop(proxy)
    stop(served)


def left(upstream: Upstream, ident: str) -> str | None:
    """How the client of request `ident` left the upstream, waiting up to five seconds."""
    deadline = time.monotonic() + 5
    while ident not in upstream.left and time.monotonic() < deadline:
        time.sleep(0.01)
    return upstream.left.get(ident)


def test_a_client_leaving_before_the_headers_cancels_the_upstream_call(
    servers: tuple[Upstream, str],
) -> None:
    upstream, proxy = servers
    sent = {**headers("gone-early"), ID_HEADER: "early", FAULT_HEADER: "hang"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{proxy}/v1/messages", content=request_body(False, "hi"), headers=sent,
                   timeout=httpx.Timeout(10, read=0.3))  # fmt: skip
    assert left(upstream, "early") == "before headers"


def test_a_client_leaving_mid_stream_cancels_the_upstream_stream(
    servers: tuple[Upstream, str],
) -> None:
    upstream, proxy = servers
    sent = {**headers("gone-mid-stream"), ID_HEADER: "mid", FAULT_HEADER: "gap:200"}
    body = request_body(True, "hi")
    with httpx.stream("POST", f"{proxy}/v1/messages", content=body, headers=sent) as response:
        first = next(response.iter_raw())
    assert first.startswith(b"event: message_start")
    assert left(upstream, "mid") == "mid-stream"


def test_the_proxy_serves_on_after_clients_left(servers: tuple[Upstream, str]) -> None:
    upstream, proxy = servers
    sent = {**headers("gone-then-back"), ID_HEADER: "gone", FAULT_HEADER: "hang"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{proxy}/v1/messages", content=request_body(False, "hi"), headers=sent,
                   timeout=httpx.Timeout(10, read=0.3))  # fmt: skip
    assert left(upstream, "gone") == "before headers"
    answer = httpx.post(f"{proxy}/v1/messages", content=request_body(False, "hi"),
                        headers=headers("back"), timeout=10)  # fmt: skip
    assert answer.status_code == 200
    assert answer.json()["content"][0]["text"] == "The payload was read in full."


def test_a_client_leaving_mid_body_is_counted_as_499_and_not_answered(
    servers: tuple[Upstream, str],
) -> None:
    proxy = servers[1]
    host, port = proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n"
        sock.sendall(head.encode() + b'{"model": ')
    gone = 'headroom_requests_total{provider="anthropic",status="499"} 1'
    deadline = time.monotonic() + 5
    while gone not in (metrics := httpx.get(f"{proxy}/metrics").text):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.01)
